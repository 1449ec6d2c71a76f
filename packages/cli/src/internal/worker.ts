/**
 * The worker thread of `--workers N`: runs the jobs of exploration and fuzzing it is sent.
 * @internal
 */
import { handler } from "./jobs.js"
import { serve } from "./pool.js"

serve(handler)
