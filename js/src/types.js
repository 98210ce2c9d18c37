// The shapes the front end's modules share, as JSDoc types checked by
// `tsc --checkJs --strict` (see tsconfig.json). Nothing here runs.

/**
 * A job's state (docs/http-api.md); `states.js` lists them.
 * @typedef {"queued" | "processing" | "completed" | "failed" | "cancelled" | "interrupted"} JobStatus
 */

/**
 * The job snapshot of docs/http-api.md: every API answer and SSE job event carries one.
 * @typedef {object} Snapshot
 * @property {string} id
 * @property {string} name
 * @property {string} processor
 * @property {string} [executor] the worker pool: "thread", "process" or "dask"
 * @property {number | null} [workers] while it runs: its pool's workers, or the Dask cluster's
 * @property {JobStatus} status
 * @property {number} total
 * @property {number} done
 * @property {number} failed
 * @property {number} pending
 * @property {number} version
 * @property {string | null} created_at
 * @property {string | null} started_at
 * @property {string | null} finished_at
 * @property {number | null} rate items per second, while active
 * @property {number | null} eta seconds, while active
 * @property {string | null} error
 * @property {boolean} [logs_cut] the job's item logs reached its log limit
 *   (`max_job_log_bytes`) and later items' logs were dropped
 * @property {number} [retrying] failed items waiting for another attempt (counted in `pending`)
 */

/**
 * One row of `GET api/batch/jobs/{id}/items`.
 * @typedef {object} ItemRecord
 * @property {number} index
 * @property {unknown} input
 * @property {string} status
 * @property {unknown} result
 * @property {string | null} error
 * @property {string | null} traceback
 * @property {number | null} duration
 * @property {string | null} [log] what the item printed and logged (its first 64 KiB)
 * @property {number} [attempts] how many times the item started (its retries included)
 */

/** @typedef {{items: ItemRecord[], total: number}} ItemsPage */
/** @typedef {{jobs: Snapshot[], total: number}} JobsPage the answer of `GET api/batch/jobs` */

/**
 * Which page of the job list a jobs view shows (`GET api/batch/jobs` parameters).
 * @typedef {object} ListQuery
 * @property {string} status "" for every status
 * @property {number} limit
 * @property {number} offset
 */

/**
 * What a jobs view is told on every change of its page of jobs.
 * @typedef {object} ListInfo
 * @property {Snapshot[]} rows newest first
 * @property {number} total jobs matching on the server
 * @property {ListQuery} query
 * @property {boolean} loaded a fetch of the page has answered
 * @property {ConnectionState} connection
 * @property {number} reconnects
 * @property {number} polls
 * @property {number | null} lastUpdate when the rows last changed (ms, the hub's clock)
 * @property {string | null} error the last fetch's error, if it failed
 */
/**
 * A page of `GET api/batch/jobs/{id}/outputs` (the widget asks for the first one only).
 * @typedef {object} OutputsAnswer
 * @property {string[]} outputs paths, relative to the server's root where inside it
 * @property {number} [total] outputs of the whole job (every page)
 * @property {number | null} [next_after] `?after=` of the next page; null on the last
 */

/**
 * What a widget shows as its connection (docs/jobs-view.md `connection`): a union, not booleans.
 * @typedef {"connecting" | "live" | "reconnecting" | "polling" | "closed" | "kernel"} ConnectionState
 */

/**
 * The phase of the page's one EventSource (stream.js):
 * `idle` before it is built; `connecting` until its first open; `open`;
 * `down` after an error, until it opens again (the browser retrying, or a
 * new EventSource after `reconnectDelay`); `closed` for good.
 * @typedef {"idle" | "connecting" | "open" | "down" | "closed"} StreamPhase
 */

/**
 * What a subscriber is told on every change: the snapshot, the connection, counters.
 * @typedef {object} ConnectionInfo
 * @property {string} jobId
 * @property {Snapshot | null} snapshot
 * @property {ConnectionState} connection
 * @property {number} reconnects
 * @property {number} polls
 * @property {number | null} lastUpdate when the snapshot shown arrived (ms, the hub's clock)
 * @property {string | null} error the last poll's error, if it failed
 * @property {boolean} deleted the job is gone from the server: nothing more will be asked
 */

/**
 * A widget's timing settings in milliseconds (docs/jobs-view.md traits), and its debug switch.
 * @typedef {object} Timing
 * @property {number} reconnectDelay
 * @property {number} watchdogInterval
 * @property {number} watchdogTimeout
 * @property {boolean} debug
 */

/**
 * The timer functions; injected in tests (a virtual clock).
 * @typedef {object} Timers
 * @property {(fn: () => void, ms: number) => unknown} setTimeout
 * @property {(id: any) => void} clearTimeout
 * @property {(fn: () => void, ms: number) => unknown} setInterval
 * @property {(id: any) => void} clearInterval
 */

/**
 * The REST calls the widget makes (api.js).
 * @typedef {object} Api
 * @property {string} baseUrl
 * @property {(jobId: string, signal?: AbortSignal) => Promise<Snapshot>} getJob
 * @property {(query: ListQuery, signal?: AbortSignal) => Promise<JobsPage>} listJobs
 * @property {(jobId: string, limit?: number, signal?: AbortSignal) => Promise<ItemsPage>} getFailedItems
 * @property {(jobId: string, limit?: number, signal?: AbortSignal) => Promise<OutputsAnswer>} getOutputs
 * @property {(jobId: string, signal?: AbortSignal) => Promise<Snapshot>} cancel
 * @property {(jobId: string, signal?: AbortSignal) => Promise<Snapshot>} retry
 * @property {(path: string) => string} fileHref
 * @property {(path: string) => string} downloadHref
 */

/**
 * The widget model's traits (docs/jobs-view.md): Python → browser settings, browser → Python mirror.
 * @typedef {object} ModelState
 * @property {string} job_id
 * @property {number} reconnect_delay
 * @property {number} watchdog_interval
 * @property {number} watchdog_timeout
 * @property {boolean} debug
 * @property {string} status
 * @property {number} total
 * @property {number} done
 * @property {number} failed
 * @property {number} version
 * @property {string} connection
 * @property {number} reconnects
 * @property {number} polls
 * @property {string} transport "auto", "server" or "kernel" (docs/batch-server.md)
 * @property {Record<string, unknown>} kernel_snapshot the job as the kernel follows it
 * @property {{ version?: number, failed_items?: ItemsPage, outputs?: string[],
 *   outputs_total?: number }} kernel_extras a finished job's failed items, its first
 *   outputs and their total, sent by the kernel
 * @property {string} [_batch_view] "jobs" for a `bw.JobsView` model
 * @property {string} [status_filter] the jobs view's status ("" for all)
 * @property {number} [limit] the jobs view's rows per page
 * @property {number} [offset] the jobs view's first row
 * @property {number} [shown] the jobs view's rows shown (browser → Python)
 * @property {{ jobs?: Snapshot[], total?: number, version?: number, error?: string }} [kernel_jobs]
 *   the page of jobs as the kernel fetched it (the kernel transport)
 */

/**
 * anywidget's model of a batch_widget widget (`AnyModel` of @anywidget/types).
 * @typedef {import("@anywidget/types").AnyModel<ModelState>} WidgetModel
 */

/**
 * anywidget's render props (`RenderProps` of @anywidget/types): the model, the
 * element and the view's AbortSignal. A view ends when that signal aborts or when
 * the cleanup `render` returns is called, whichever comes first (older anywidget
 * front ends, and the tests, only call the cleanup).
 * @typedef {import("@anywidget/types").RenderProps<ModelState>} RenderProps
 */

export {};
