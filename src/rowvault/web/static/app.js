// rowvault web page: restore and backup jobs with live progress, backup download, job history.
// Plain browser JavaScript, no framework, no build step. Text that comes from a backup or
// the server is only ever put into the page with textContent, never parsed as HTML.
"use strict";

const FINAL = new Set(["completed", "error", "cancelled", "interrupted"]);
const RESUMABLE = new Set(["cancelled", "interrupted", "error"]);
const RUNNING = new Set(["queued", "running"]);
const MISSES_BEFORE_GIVING_UP = 3;
const TOKEN_KEY = "rowvault.token";
const DEFAULT_POLL_MS = 2000;
const BACKUP_NAME = /\.(json|json\.gz|gz)$/i;

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------------------------------
// Formatting

const numbers = new Intl.NumberFormat("en-US");

function formatInt(n) {
  return numbers.format(Math.round(Number(n) || 0));
}

function formatBytes(bytes) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = Number(bytes) || 0;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

function formatSeconds(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
  if (seconds < 1) return "< 1 s";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function formatDateTime(iso) {
  if (!iso) return "–";
  const when = new Date(iso);
  return Number.isNaN(when.getTime()) ? iso : when.toLocaleString();
}

function secondsBetween(startIso, endIso) {
  if (!startIso) return null;
  const end = endIso ? Date.parse(endIso) : Date.now();
  return Math.max(0, (end - Date.parse(startIso)) / 1000);
}

/** Percent done as a whole number, rounded down so 100 means really finished. */
function percentOf(processed, total, finished) {
  if (!total) return finished ? 100 : 0;
  return Math.floor(Math.min(100, Math.max(0, (100 * processed) / total)));
}

/** The one way a percentage is written on the page. */
function formatPercent(percent) {
  return `${Math.floor(Number(percent) || 0)}%`;
}

function plural(n, word) {
  return `${formatInt(n)} ${word}${Math.round(Number(n)) === 1 ? "" : "s"}`;
}

// ---------------------------------------------------------------------------------------------
// Small DOM helpers

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function show(node, visible) {
  node.hidden = !visible;
}

function setText(node, text) {
  node.textContent = text === null || text === undefined || text === "" ? "–" : String(text);
}

function showMessage(node, text) {
  node.textContent = text || "";
  show(node, Boolean(text));
}

/** Update a role="progressbar" element: fill width and its ARIA values. */
function setBar(bar, percent, { text, state } = {}) {
  bar.setAttribute("aria-valuenow", String(percent));
  bar.setAttribute("aria-valuetext", text || formatPercent(percent));
  bar.querySelector(".bar-fill").style.width = `${percent}%`;
  if (state) bar.dataset.state = state;
  else delete bar.dataset.state;
}

function makeBar(label) {
  const bar = el("div", "bar");
  bar.setAttribute("role", "progressbar");
  bar.setAttribute("aria-label", label);
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", "100");
  bar.setAttribute("aria-valuenow", "0");
  bar.append(el("div", "bar-fill"));
  return bar;
}

// ---------------------------------------------------------------------------------------------
// Token: asked for once when the server answers 401, kept for this tab only

let tokenRequest = null;

function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

/**
 * Headers of every API call: the token, and X-Rowvault, without which the server refuses a
 * POST (another site cannot send a custom header without a CORS preflight; see web/security.py).
 */
function apiHeaders() {
  const token = storedToken();
  return { "X-Rowvault": "1", ...(token ? { Authorization: `Bearer ${token}` } : {}) };
}

/** Show the token form; every caller that got a 401 meanwhile waits for the same answer. */
function askToken(rejected) {
  if (!tokenRequest) {
    tokenRequest = new Promise((resolve) => {
      const dialog = $("token-dialog");
      showMessage($("token-error"), rejected ? "The server did not accept that token. Try again." : "");
      $("token").value = "";
      dialog.showModal();
      $("token").focus();
      dialog.addEventListener("close", () => resolve(), { once: true });
    }).finally(() => {
      tokenRequest = null;
    });
  }
  return tokenRequest;
}

function setupTokenDialog() {
  const dialog = $("token-dialog");
  dialog.addEventListener("cancel", (event) => event.preventDefault()); // nothing works without it
  $("token-form").addEventListener("submit", (event) => {
    const token = $("token").value.trim();
    if (!token) {
      event.preventDefault();
      showMessage($("token-error"), "Enter the token.");
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
  });
}

// ---------------------------------------------------------------------------------------------
// HTTP

class ApiError extends Error {
  constructor(status, detail, body) {
    super(detail);
    this.status = status;
    this.body = body || {};
  }
}

async function readError(response) {
  let body = {};
  try {
    body = await response.json();
  } catch {
    body = {};
  }
  const detail = body.detail || body.error || `${response.status} ${response.statusText}`;
  return new ApiError(response.status, String(detail), body);
}

/** fetch with the token; on 401 ask for the token and try again. */
async function request(path, options = {}) {
  let rejected = false;
  for (;;) {
    const headers = { ...(options.headers || {}), ...apiHeaders() };
    const response = await fetch(path, { ...options, headers });
    if (response.status !== 401) return response;
    await askToken(rejected && storedToken() !== null);
    rejected = true;
  }
}

async function api(path, options = {}) {
  const response = await request(path, options);
  if (!response.ok) throw await readError(response);
  return response.json();
}

/**
 * Ask the server for a short-lived link to the download (it checks the options first and
 * answers with the reason if they are wrong), then follow the link: the browser streams the
 * file to disk, however large, and the link needs no Authorization header.
 */
async function saveDownload(path, fallbackName) {
  const { url } = await api("/api/downloads", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ url: path }),
  });
  const link = el("a");
  link.href = url;
  link.download = "";
  document.body.append(link);
  link.click();
  link.remove();
  return { name: fallbackName };
}

/** POST the form with XMLHttpRequest so upload progress can be shown. */
function sendUpload(form, onProgress, onSent) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/backup");
    for (const [key, value] of Object.entries(apiHeaders())) xhr.setRequestHeader(key, value);
    // Answered once the file is received: reading and checking it is the job's first stage,
    // shown with its bytes in the job view rather than as a silent wait here.
    xhr.setRequestHeader("Prefer", "respond-async");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    });
    xhr.upload.addEventListener("load", onSent);
    xhr.addEventListener("load", () => resolve(xhr));
    xhr.addEventListener("error", () => reject(new ApiError(0, "The upload failed: the server could not be reached.")));
    xhr.addEventListener("abort", () => reject(new ApiError(0, "The upload was aborted.")));
    xhr.send(form);
  });
}

function parseXhr(xhr) {
  try {
    return JSON.parse(xhr.responseText || "{}");
  } catch {
    return {};
  }
}

async function upload(form, onProgress, onSent) {
  let rejected = false;
  for (;;) {
    const xhr = await sendUpload(form, onProgress, onSent);
    const body = parseXhr(xhr);
    if (xhr.status === 401) {
      await askToken(rejected);
      rejected = true;
      continue;
    }
    if (xhr.status >= 200 && xhr.status < 300) return body;
    throw new ApiError(xhr.status, String(body.detail || body.error || `${xhr.status} ${xhr.statusText}`), body);
  }
}

// ---------------------------------------------------------------------------------------------
// Server configuration

const config = { pollInterval: DEFAULT_POLL_MS, maxUploadMb: null, loaded: null };

function loadConfig() {
  if (!config.loaded) {
    config.loaded = api("/api/config")
      .then((answer) => {
        config.pollInterval = Math.max(100, Number(answer.pollInterval) || DEFAULT_POLL_MS);
        config.maxUploadMb = answer.maxUploadMb || null;
        fillTruncated($("target-value"), answer.database);
        $("target").title = `${answer.database} (rowvault ${answer.version})`;
      })
      .catch((error) => {
        config.loaded = null;
        showMessage($("notice"), `Could not read the server configuration: ${error.message}`);
      });
  }
  return config.loaded;
}

// ---------------------------------------------------------------------------------------------
// Navigation: #/restore, #/backup, #/history, #/job/<id> (also ?job=<id>)

function currentRoute() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [name, ...rest] = hash.split("/");
  if (name === "job" && rest.length) return { panel: "job", id: decodeURIComponent(rest.join("/")) };
  if (["restore", "backup", "history"].includes(name)) return { panel: name };
  return { panel: "restore" };
}

function showPanel(name) {
  for (const panel of document.querySelectorAll("[data-panel]")) show(panel, panel.dataset.panel === name);
  markTab(name === "job" ? "restore" : name);
}

function markTab(tab) {
  for (const link of document.querySelectorAll("[data-tab]")) {
    if (link.dataset.tab === tab) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function route() {
  const { panel, id } = currentRoute();
  if (panel !== "job") stopWatching();
  showPanel(panel);
  if (panel === "job") watchJob(id);
  if (panel === "history") loadHistory();
  if (panel === "backup") loadTables();
}

function openJob(id) {
  const target = `#/job/${encodeURIComponent(id)}`;
  if (location.hash === target) route();
  else location.hash = target;
}

// ---------------------------------------------------------------------------------------------
// Restore form

function chosenFile() {
  return $("file").files[0] || null;
}

function showChosenFile() {
  const file = chosenFile();
  $("drop").classList.toggle("has-file", Boolean(file));
  $("drop-title").textContent = file ? file.name : "Drop a backup file here, or choose one";
  $("drop-hint").textContent = file ? `${formatBytes(file.size)} · choose another to replace it` : ".json or .json.gz";
  if (!file) {
    const choose = el("u", null, "choose one");
    $("drop-title").replaceChildren("Drop a backup file here, or ", choose);
  }
  showMessage($("restore-error"), "");
}

function setupDropZone() {
  const drop = $("drop");
  $("file").addEventListener("change", showChosenFile);
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.add("is-over");
    });
  }
  for (const type of ["dragleave", "dragend"]) drop.addEventListener(type, () => drop.classList.remove("is-over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("is-over");
    if (event.dataTransfer && event.dataTransfer.files.length) {
      $("file").files = event.dataTransfer.files;
      showChosenFile();
    }
  });
  // A file dropped beside the zone must not make the browser leave the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
}

const MODE_HELP = {
  upsert: "Rows are matched on their primary key; restoring twice changes nothing.",
  insert: "A row whose key is already in the database is reported as an error.",
  skip: "A row whose key is already in the database is left as it is.",
  replace: "Each table in the backup is emptied first. You will be asked to confirm.",
};

function showModeHelp() {
  $("mode-help").textContent = MODE_HELP[$("mode").value] || "";
}

function restoreProblem(file) {
  if (!file) return "Choose a backup file first.";
  if (!BACKUP_NAME.test(file.name)) return `${file.name} is not a .json or .json.gz file.`;
  if (config.maxUploadMb && file.size > config.maxUploadMb * 1024 * 1024) {
    return `${file.name} (${formatBytes(file.size)}) is larger than the server's limit of ${config.maxUploadMb} MB.`;
  }
  const batch = $("batch-size").value.trim();
  if (batch && !(Number.isInteger(Number(batch)) && Number(batch) >= 1)) return "Batch size must be a whole number of 1 or more.";
  return null;
}

/** Show the `<name>-dialog`; resolves true when its confirm button closed it. */
function confirmDialog(name) {
  return new Promise((resolve) => {
    const dialog = $(`${name}-dialog`);
    dialog.returnValue = "";
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), { once: true });
    dialog.showModal();
    $(`${name}-cancel`).focus();
  });
}

function restoreForm(file, replaceConfirmed) {
  const form = new FormData();
  form.append("mode", $("mode").value);
  const batch = $("batch-size").value.trim();
  form.append("batchSize", batch || "auto");
  form.append("dryRun", $("dry-run").checked ? "true" : "false");
  form.append("snapshot", $("snapshot").checked && !$("dry-run").checked ? "true" : "false");
  if (replaceConfirmed) form.append("confirmReplace", "true");
  form.append("file", file, file.name); // last: the options are read before the file's bytes
  return form;
}

function showUploadProgress(loaded, total) {
  const percent = percentOf(loaded, total, false);
  $("upload-label").textContent = "Uploading";
  $("upload-text").textContent = `${formatBytes(loaded)} of ${formatBytes(total)} · ${formatPercent(percent)}`;
  setBar($("upload-bar"), percent, { text: `${formatPercent(percent)} uploaded` });
}

function showUploadChecking() {
  $("upload-label").textContent = "Uploaded. Starting the restore…";
  $("upload-text").textContent = formatPercent(100);
  setBar($("upload-bar"), 100, { text: "Uploaded; starting the restore", state: "busy" });
}

function showRestoreError(error) {
  const box = $("restore-error");
  box.replaceChildren(el("span", null, error.message));
  const problems = Array.isArray(error.body && error.body.problems) ? error.body.problems : [];
  if (problems.length) {
    const list = el("ul");
    for (const problem of problems) list.append(el("li", null, problem));
    box.append(list);
  }
  if (error.status === 409 && error.body && error.body.progressId) {
    const link = el("a", null, "View the running restore.");
    link.href = `#/job/${encodeURIComponent(error.body.progressId)}`;
    box.append(" ", link);
  }
  show(box, true);
}

async function startRestore(event) {
  event.preventDefault();
  await loadConfig();
  const file = chosenFile();
  const problem = restoreProblem(file);
  if (problem) return showMessage($("restore-error"), problem);
  const replacing = $("mode").value === "replace";
  if (replacing && !(await confirmDialog("replace"))) return undefined;
  showMessage($("restore-error"), "");
  $("start").disabled = true;
  show($("upload"), true);
  showUploadProgress(0, file.size);
  try {
    const answer = await upload(restoreForm(file, replacing), showUploadProgress, showUploadChecking);
    resetRestoreForm();
    openJob(answer.progressId);
  } catch (error) {
    show($("upload"), false);
    showRestoreError(error);
  } finally {
    $("start").disabled = false;
  }
  return undefined;
}

function resetRestoreForm() {
  $("file").value = "";
  show($("upload"), false);
  setBar($("upload-bar"), 0);
  showChosenFile();
}

// ---------------------------------------------------------------------------------------------
// Job view: follow the progress over server-sent events; poll every pollInterval ms when the
// stream cannot be had (or breaks), as the API's other clients do.

const STREAM_SILENCE_MS = 20_000; // the server sends a keep-alive every 15 s

const watch = {
  id: null,
  generation: 0,
  timer: null,
  stream: null,
  misses: 0,
  trouble: false,
  errors: [],
  bars: new Map(),
  job: null,
  kind: "restore",
};

/** Jobs this page started, by id: their kind is known before the server says it. */
const startedKinds = new Map();

/** "Restore" or "Backup": the watched job's word, for titles and messages. */
function kindWord() {
  return watch.kind === "backup" ? "Backup" : "Restore";
}

function setKind(kind) {
  watch.kind = kind === "backup" ? "backup" : "restore";
  $("panel-job").dataset.kind = watch.kind;
  markTab(watch.kind);
  const again = $("again");
  again.textContent = watch.kind === "backup" ? "Make another backup" : "Restore another file";
  again.href = watch.kind === "backup" ? "#/backup" : "#/restore";
  again.classList.toggle("btn-primary", watch.kind !== "backup"); // the download is the main action
  $("job-source").classList.toggle("is-backup", watch.kind === "backup");
}

function stopWatching() {
  watch.generation += 1;
  clearTimeout(watch.timer);
  watch.timer = null;
  if (watch.stream) watch.stream.abort();
  watch.stream = null;
}

/** How the page hears of progress now ("stream" or "polling"), for people and tests alike. */
function setSource(source) {
  $("panel-job").dataset.source = source;
}

function resetJobView(id) {
  $("job-id").textContent = id;
  setKind(startedKinds.get(id) || "restore");
  $("job-title").textContent = kindWord();
  setStatus("queued");
  showJobMessage("");
  showJobSource(null);
  for (const key of ["processed", "total"]) $(key).textContent = "0";
  $("percent").textContent = formatPercent(0);
  show($("percent"), false);
  show($("overall-count"), false);
  show($("overall-waiting"), true);
  $("overall-waiting").textContent = `Preparing the ${kindWord().toLowerCase()}…`;
  showMessage($("phase"), "");
  setBar($("overall-bar"), 0, { text: `Preparing the ${kindWord().toLowerCase()}`, state: "busy" });
  for (const key of ["model", "record-id", "rate", "eta"]) setText($(key), null);
  $("error-count").textContent = "0";
  $("table-bars").replaceChildren();
  $("errors").replaceChildren();
  watch.errors = [];
  watch.bars = new Map();
  watch.job = null;
  showErrorCount(0, 0);
  show($("tables-empty"), true);
  show($("summary"), false);
  show($("tables-card"), true);
  $("job-grid").classList.remove("is-finished");
  show($("job-body"), true);
  show($("job-missing"), false);
  for (const key of ["cancel", "resume", "undo", "rejects", "error-report", "backup-file", "again"]) show($(key), false);
}

async function watchJob(id) {
  stopWatching();
  watch.id = id;
  watch.misses = 0;
  watch.trouble = false;
  resetJobView(id);
  const generation = watch.generation;
  await loadConfig();
  describeJob(id, generation);
  follow(generation);
}

/** The file restored and the database, from the job's summary (the progress record has neither). */
async function describeJob(id, generation) {
  try {
    const job = await api(`/api/backup/jobs/${encodeURIComponent(id)}`);
    if (generation === watch.generation) showJobSource(job);
  } catch {
    // the progress view says what is wrong with the id
  }
}

function showJobSource(job) {
  const box = $("job-source");
  show(box, Boolean(job));
  if (!job) return;
  watch.job = job;
  if (job.kind && job.kind !== watch.kind) {
    setKind(job.kind);
    setStatus(job.status, Number(job.errorCount) || 0);
  }
  fillTruncated($("job-file"), job.file || (job.undoOf ? "safety snapshot" : "–"));
  fillTruncated($("job-target"), job.target);
}

/** Text that may be cut short with an ellipsis: the full value on hover (title) and focus. */
function fillTruncated(node, text) {
  setText(node, text);
  node.title = node.textContent;
}

/** Read the event stream with fetch, so the token goes in a header as on every other call. */
async function follow(generation) {
  const controller = new AbortController();
  watch.stream = controller;
  let response;
  try {
    response = await request(`/api/backup/progress/stream?id=${encodeURIComponent(watch.id)}`, {
      headers: { accept: "text/event-stream" },
      signal: controller.signal,
    });
  } catch (error) {
    if (generation === watch.generation) streamFailed(generation);
    return;
  }
  if (generation !== watch.generation) return controller.abort();
  if (!response.ok || !response.body) {
    const error = await readError(response);
    if (generation === watch.generation) handlePollError(error, generation);
    return;
  }
  setSource("stream");
  const finished = await readEvents(response.body, controller, generation);
  if (generation === watch.generation && !finished) streamFailed(generation);
}

/** Render each `data:` event; true when the job's final record came. */
async function readEvents(body, controller, generation) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let silence = setTimeout(() => controller.abort(), STREAM_SILENCE_MS);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done || generation !== watch.generation) return false;
      clearTimeout(silence);
      silence = setTimeout(() => controller.abort(), STREAM_SILENCE_MS);
      buffer += decoder.decode(value, { stream: true });
      const events = buffer.split(/\r?\n\r?\n/);
      buffer = events.pop();
      for (const event of events) {
        const data = event.split(/\r?\n/).filter((line) => line.startsWith("data:")).map((line) => line.slice(5).trimStart());
        if (data.length && received(JSON.parse(data.join("\n")), generation)) {
          controller.abort();
          return true;
        }
      }
    }
  } catch {
    return false;
  } finally {
    clearTimeout(silence);
  }
}

/** The stream broke or could not be opened: carry on by polling. */
function streamFailed(generation) {
  watch.stream = null;
  setSource("polling");
  poll(generation);
}

function pollLater(generation) {
  if (generation !== watch.generation) return;
  watch.timer = setTimeout(() => poll(generation), config.pollInterval);
}

async function poll(generation) {
  if (generation !== watch.generation) return;
  setSource("polling");
  let progress;
  try {
    progress = (await api(`/api/backup/progress?id=${encodeURIComponent(watch.id)}`)).progress;
  } catch (error) {
    if (generation === watch.generation) handlePollError(error, generation);
    return;
  }
  if (generation !== watch.generation) return;
  if (!received(progress, generation)) pollLater(generation);
}

/** Show a progress record, from the stream or a poll; true when the job has finished. */
function received(progress, generation) {
  watch.misses = 0;
  if (watch.trouble) showJobMessage(""); // the server answers again
  watch.trouble = false;
  renderProgress(progress);
  if (!isFinished(progress)) return false;
  finishJob(watch.id, generation);
  return true;
}

function handlePollError(error, generation) {
  watch.trouble = true;
  if (error.status === 404) {
    watch.misses += 1;
    if (watch.misses >= MISSES_BEFORE_GIVING_UP) {
      stopWatching();
      setStatus("unknown");
      $("job-title").textContent = "Restore not found";
      showJobMessage(
        `The server has no job with the id ${watch.id} (it answered 404 ${MISSES_BEFORE_GIVING_UP} times in a row). Stopped checking for progress.`,
      );
      show($("job-body"), false);
      show($("job-missing"), true);
      return;
    }
  } else if (error.status === 0 || error instanceof TypeError) {
    showJobMessage("Lost contact with the server; trying again…");
  } else {
    showJobMessage(`The server answered: ${error.message}. Trying again…`);
  }
  pollLater(generation);
}

/** The job's status decides; a server without one (the original API) ends on the model. */
function isFinished(progress) {
  if (progress.status) return FINAL.has(progress.status);
  return progress.model === "completed" || progress.model === "error";
}

function showJobMessage(text, tone = "warn") {
  const box = $("job-message");
  box.className = tone === "bad" ? "notice" : "notice notice-warn";
  showMessage(box, text);
}

const BACKUP_TITLES = {
  queued: "Backup queued",
  running: "Backing up…",
  completed: "Backup completed",
  partial: "Backup completed with errors",
  error: "Backup failed",
  cancelled: "Backup cancelled",
  interrupted: "Backup interrupted",
};

const TITLES = {
  queued: "Restore queued",
  running: "Restoring…",
  completed: "Restore completed",
  partial: "Restore completed with errors",
  error: "Restore failed",
  cancelled: "Restore cancelled",
  interrupted: "Restore interrupted",
};

/** The status as shown: a completed job with record errors is one of its own (the CLI's exit 3). */
function outcome(status, errorCount) {
  return status === "completed" && errorCount > 0 ? "partial" : status;
}

function badgeText(status, errorCount) {
  return outcome(status, errorCount) === "partial" ? `Completed with ${plural(errorCount, "error")}` : status;
}

function setStatus(status, errorCount = 0) {
  const badge = $("job-status");
  badge.dataset.status = outcome(status, errorCount);
  badge.textContent = badgeText(status, errorCount);
  const title = (watch.kind === "backup" ? BACKUP_TITLES : TITLES)[outcome(status, errorCount)];
  if (title) $("job-title").textContent = title;
}

function barState(status) {
  if (status === "completed") return "done";
  if (status === "partial") return "partial";
  if (status === "error") return "bad";
  if (status === "cancelled" || status === "interrupted") return "stopped";
  return undefined;
}

function renderProgress(p) {
  const status = p.status || (p.model === "completed" ? "completed" : p.model === "error" ? "error" : "running");
  const errorCount = Number(p.errorCount) || 0;
  setStatus(status, errorCount);
  renderOverall(p, status, errorCount);
  renderPhase(p, status);
  renderStats(p, status);
  renderTableBars(p.counts || {}, p.model, status);
  renderErrors(p.errors || [], errorCount);
  renderActions(status, errorCount, p.resumable);
  $("errors-empty").textContent = FINAL.has(status) ? "No errors." : "No errors so far.";
}

function renderOverall(p, status, errorCount) {
  const waiting = !p.total && !FINAL.has(status);
  const percent = percentOf(p.processed, p.total, status === "completed");
  show($("overall-count"), !waiting);
  show($("overall-waiting"), waiting);
  const preparing = `Preparing the ${kindWord().toLowerCase()}`;
  $("overall-waiting").textContent = waiting && p.phase ? `${p.phase.label}…` : `${preparing}…`;
  $("processed").textContent = formatInt(p.processed);
  $("total").textContent = formatInt(p.total);
  // Before the records are counted, the number is the stage's own (rows saved, bytes read).
  const stage = waiting && p.phase && p.phase.total ? percentOf(p.phase.done, p.phase.total, false) : null;
  show($("percent"), !waiting || stage !== null);
  $("percent").textContent = formatPercent(waiting ? stage : percent);
  const text = waiting
    ? (p.phase && p.phase.label) || preparing
    : `${formatPercent(percent)} (${formatInt(p.processed)} of ${formatInt(p.total)} records)`;
  setBar($("overall-bar"), percent, { text, state: waiting ? "busy" : barState(outcome(status, errorCount)) });
}

const PHASE_UNITS = { snapshot: "rows", creating: "tables", deferred: "tables", indexes: "statements" };

/** The stage the job is in (every one shows, also those that write no records) and its count. */
function phaseText(phase, waiting) {
  const { name, label, done, total } = phase;
  if (name === "data" || total === null || total === undefined) return waiting ? "" : label;
  const count = name === "reading"
    ? `${formatBytes(done)} of ${formatBytes(total)}`
    : `${formatInt(done)} of ${formatInt(total)} ${PHASE_UNITS[name] || ""}`.trim();
  if (waiting) return count; // the label and the percentage are above the bar
  return `${label}: ${count} (${formatPercent(percentOf(done, total, false))})`;
}

function renderPhase(p, status) {
  const retry = p.retrying;
  let text = "";
  if (retry && !FINAL.has(status)) {
    const wait = retry.waitSeconds ? ` in ${formatSeconds(retry.waitSeconds)}` : "";
    text = `Retrying${wait} (attempt ${formatInt(retry.attempt)} of ${formatInt(retry.attempts)}): ${retry.reason || "the database is unavailable"}`;
  } else if (p.phase && !FINAL.has(status)) {
    text = phaseText(p.phase, !p.total);
  }
  showMessage($("phase"), text);
  $("phase").classList.toggle("is-retrying", Boolean(retry && !FINAL.has(status)));
}

/** `table:id`, as the engine names a record in its messages. */
function recordName(p) {
  if (!p.recordId) return null;
  const counts = p.counts || {};
  // When finished, `model` says so; the record is then in the last table that was written.
  const written = Object.keys(counts).filter((name) => Number(counts[name].processed) > 0);
  const table = Object.hasOwn(counts, p.model) ? p.model : written[written.length - 1];
  return table ? `${table}:${p.recordId}` : String(p.recordId);
}

function renderStats(p, status) {
  const done = FINAL.has(status);
  const table = p.counts && Object.hasOwn(p.counts, p.model) ? p.model : null; // not "snapshot"
  setText($("model"), done ? null : table);
  fillTruncated($("record-id"), recordName(p));
  setText($("rate"), p.rate ? `${formatInt(p.rate)} records/s` : null);
  if (done) setText($("eta"), status === "completed" ? "Done" : null);
  else setText($("eta"), formatSeconds(p.etaSeconds));
  $("error-count").textContent = formatInt(p.errorCount);
}

function tableBar(name) {
  let entry = watch.bars.get(name);
  if (!entry) {
    const item = el("li", "table-bar");
    const head = el("div", "row-between");
    const label = el("span", "table-bar-name", name);
    const count = el("span", "table-bar-count num");
    head.append(label, count);
    const bar = makeBar(`Table ${name}`);
    item.append(head, bar);
    $("table-bars").append(item);
    entry = { item, count, bar };
    watch.bars.set(name, entry);
  }
  return entry;
}

function renderTableBars(counts, current, status) {
  const names = Object.keys(counts);
  show($("tables-empty"), names.length === 0);
  $("tables-empty").textContent = FINAL.has(status)
    ? "No table was written."
    : `Waiting for the ${kindWord().toLowerCase()} to start…`;
  for (const name of names) {
    const { processed = 0, total = 0 } = counts[name] || {};
    const entry = tableBar(name);
    const full = total > 0 && processed >= total;
    const percent = percentOf(processed, total, full || status === "completed");
    entry.count.textContent = `${formatInt(processed)} / ${formatInt(total)}`;
    entry.item.classList.toggle("is-current", name === current && !FINAL.has(status));
    setBar(entry.bar, percent, {
      text: `${formatPercent(percent)} (${formatInt(processed)} of ${formatInt(total)})`,
      state: full ? "done" : barState(status === "completed" ? "running" : status),
    });
  }
}

/** Append the errors not shown yet; redraw the list if the server's list changed shape. */
function renderErrors(errors, errorCount) {
  const shown = watch.errors;
  const list = $("errors");
  const samePrefix =
    errors.length >= shown.length &&
    (shown.length === 0 || (errors[0] === shown[0] && errors[shown.length - 1] === shown[shown.length - 1]));
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 24;
  if (!samePrefix) {
    list.replaceChildren();
    watch.errors = [];
  }
  const fresh = errors.slice(watch.errors.length);
  for (const message of fresh) list.append(el("li", null, message));
  watch.errors = watch.errors.concat(fresh);
  if (fresh.length && atBottom && watch.errors.length > fresh.length) list.scrollTop = list.scrollHeight;
  showErrorCount(watch.errors.length, errorCount);
}

function showErrorCount(listed, total) {
  const count = Math.max(listed, total);
  $("errors-shown").textContent = count ? `(${formatInt(count)})` : "";
  show($("errors-empty"), count === 0);
  const more = $("errors-more");
  showMessage(more, total > listed ? `Showing the first ${formatInt(listed)} of ${formatInt(total)} errors; the error report has them all.` : "");
}

function renderActions(status, errorCount, resumable) {
  show($("cancel"), RUNNING.has(status));
  const canResume = resumable === undefined ? RESUMABLE.has(status) : resumable;
  show($("resume"), canResume && watch.kind !== "backup"); // a backup is started again, not resumed
  show($("again"), FINAL.has(status));
  const report = $("error-report");
  report.href = `/api/backup/jobs/${encodeURIComponent(watch.id)}/errors`;
  show(report, FINAL.has(status) && errorCount > 0);
}

async function finishJob(id, generation) {
  let job;
  try {
    job = await api(`/api/backup/jobs/${encodeURIComponent(id)}`);
  } catch (error) {
    if (generation === watch.generation) showJobMessage(`Could not load the summary: ${error.message}`);
    return;
  }
  if (generation !== watch.generation) return;
  if (!FINAL.has(job.status)) {
    pollLater(generation); // the job is still saving its result
    return;
  }
  renderJobSummary(job);
}

function renderJobSummary(job) {
  const dryRun = Boolean(job.options && job.options.dryRun);
  const errorCount = Number(job.errorCount) || 0;
  showJobSource(job);
  setStatus(job.status, errorCount);
  if (job.kind === "backup") return renderBackupSummary(job);
  const title = TITLES[outcome(job.status, errorCount)];
  if (dryRun) $("job-title").textContent = title.replace("Restore", "Dry run");
  if (job.undoOf) $("job-title").textContent = title.replace("Restore", "Undo");
  const note = stoppedNote(job);
  if (note) showJobMessage(note, job.status === "error" ? "bad" : "warn");
  const rejects = $("rejects");
  rejects.href = `/api/backup/jobs/${encodeURIComponent(job.id)}/rejects`;
  show(rejects, Boolean(job.rejects));
  const results = job.result && job.result.results;
  if (results) renderSummary(results, job, dryRun);
  show($("undo"), Boolean(job.snapshot) && FINAL.has(job.status) && !job.undoneBy && !dryRun);
  if (job.resumable !== undefined) show($("resume"), job.resumable);
  if (job.undoneBy) showJobMessage(`This restore was undone (job ${job.undoneBy}).`, "warn");
  return undefined;
}

/** A finished backup: its file to download (the table bars stay: they say what it holds). */
function renderBackupSummary(job) {
  const result = job.result || {};
  const link = $("backup-file");
  link.href = `/api/backup/jobs/${encodeURIComponent(job.id)}/file`;
  const size = result.fileBytes ? ` (${formatBytes(result.fileBytes)})` : "";
  link.textContent = `Download the backup${size}`;
  link.title = job.file || "";
  show(link, Boolean(job.download));
  show($("resume"), false);
  if (job.status === "completed" && !job.download) {
    showJobMessage("The backup's file is no longer on the server: make another backup.", "warn");
  } else if (job.status === "error") {
    showJobMessage(`The backup failed: ${job.error || "unknown error"}. Nothing was kept: start it again.`, "bad");
  } else if (job.status === "cancelled" || job.status === "interrupted") {
    showJobMessage(`The backup ${job.status === "cancelled" ? "was cancelled" : "stopped"}: nothing was kept. Start it again.`);
  }
  return undefined;
}

const SUMMARY_COLUMNS = ["Created", "Updated", "Unchanged", "Failed"];

/** Why a job ended without completing, and what Resume would do. */
function stoppedNote(job) {
  const records = `${formatInt(job.processed)} of ${formatInt(job.total)} records`;
  const resume = job.resumable === false
    ? "Nothing was written: fix the problem and start the restore again."
    : "Resume carries on from the last committed batch.";
  if (job.status === "error" && job.resumable === false && !Number(job.processed)) {
    return `The restore did not start: ${job.error || "unknown error"}. Nothing was written: fix the problem and start the restore again.`;
  }
  if (job.status === "error") return `The restore failed after ${records}: ${job.error || "unknown error"}. ${resume}`;
  if (job.status === "cancelled") return `Cancelled after ${records}. ${resume}`;
  if (job.status === "interrupted") return `The process running this restore stopped after ${records}. ${resume}`;
  return null;
}

function summaryRow(name, cells, { focusable = false } = {}) {
  const row = el("tr");
  const label = el("td", "cell-name");
  label.append(truncatable(el("span", null, name), focusable));
  row.append(label);
  cells.forEach(([value, extra], i) => {
    const cell = el("td", `num${extra ? ` ${extra}` : ""}`);
    const number = truncatable(el("span", "cell-value", formatInt(value)), focusable);
    number.title = `${SUMMARY_COLUMNS[i]}: ${number.textContent}`;
    cell.append(number);
    cell.dataset.label = SUMMARY_COLUMNS[i];
    row.append(cell);
  });
  return row;
}

/** A cell that may end in an ellipsis on a narrow screen: the full text on hover and focus. */
function truncatable(node, focusable) {
  node.title = node.textContent;
  if (focusable) node.tabIndex = 0;
  node.classList.add("truncate");
  return node;
}

function renderSummary(results, job, dryRun) {
  const totals = { created: 0, updated: 0, unchanged: 0, failed: 0 };
  const rows = [];
  for (const [name, r] of Object.entries(results)) {
    for (const key of Object.keys(totals)) totals[key] += Number(r[key]) || 0;
    rows.push(summaryRow(name, [[r.created], [r.updated], [r.unchanged], [r.failed, r.failed ? "failed" : ""]]));
  }
  $("summary-rows").replaceChildren(...rows);
  const foot = summaryRow(
    "Total",
    [[totals.created], [totals.updated], [totals.unchanged], [totals.failed, totals.failed ? "failed" : ""]],
    { focusable: true },
  );
  $("summary-foot").replaceChildren(foot);
  $("summary-title").textContent = dryRun ? "What the restore would do" : "Summary";
  $("summary-lead").textContent = summaryLead(totals, job, dryRun);
  show($("summary"), true);
  show($("tables-card"), false); // the summary says per table what the bars said, and more
  $("job-grid").classList.add("is-finished");
}

function summaryLead(totals, job, dryRun) {
  const took = formatSeconds(secondsBetween(job.startedAt, job.finishedAt));
  const records = `${formatInt(job.processed)} of ${formatInt(job.total)} records`;
  const failed = totals.failed ? `, ${formatInt(totals.failed)} failed` : ", none failed";
  if (dryRun) return `Dry run: nothing was written. ${records} checked${failed}, in ${took}.`;
  return `${records} processed in ${took}${failed}.`;
}

/** POST /api/backup/{action} for the watched job from its button; the answer, or null after
 * showing why it failed. The button is disabled meanwhile so a double click sends one. */
async function jobAction(action) {
  const button = $(action);
  button.disabled = true;
  try {
    return await api(`/api/backup/${action}?id=${encodeURIComponent(watch.id)}`, { method: "POST" });
  } catch (error) {
    showJobMessage(error.message, "bad");
    return null;
  } finally {
    button.disabled = false;
  }
}

async function cancelJob() {
  if (await jobAction("cancel")) showJobMessage(`Cancelling: the ${kindWord().toLowerCase()} stops after its current batch.`);
}

/** Undo a finished restore from its safety snapshot: a new job, watched like any other. */
async function undoJob() {
  if (!(await confirmDialog("undo"))) return;
  const started = await jobAction("undo");
  if (started) location.hash = `#/job/${encodeURIComponent(started.progressId)}`;
}

async function resumeJob() {
  const id = watch.id;
  if (await jobAction("resume")) watchJob(id);
}

/** Links to files behind the token: fetch them with the header instead of navigating. */
function downloadOnClick(link, fallbackName) {
  link.addEventListener("click", async (event) => {
    event.preventDefault();
    try {
      await saveDownload(link.getAttribute("href"), fallbackName());
    } catch (error) {
      showJobMessage(error.message, "bad");
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Backup: pick tables, limits and options from the database's own tables; start a job

const DEFAULT_LIMIT = 1000;
const backupForm = { tables: [], loaded: null };

/** The database's tables (and which have demo rows), asked for once per page load. */
function loadTables() {
  if (!backupForm.loaded) {
    backupForm.loaded = api("/api/tables")
      .then((answer) => renderTablePicks(answer))
      .catch((error) => {
        backupForm.loaded = null;
        showMessage($("tables-loading"), `Could not read the database's tables: ${error.message}`);
      });
  }
  return backupForm.loaded;
}

function renderTablePicks({ tables, demoData }) {
  backupForm.tables = tables.map((t) => t.name);
  const items = tables.map((table, i) => {
    const item = el("li", "table-pick");
    const box = el("input");
    box.type = "checkbox";
    box.checked = true;
    box.id = `pick-${i}`;
    box.value = table.name;
    box.addEventListener("change", showPickCount);
    const label = el("label", "truncate", table.name);
    label.htmlFor = box.id;
    label.title = table.name;
    item.append(box, label);
    return item;
  });
  $("table-picks").replaceChildren(...items);
  show($("tables-loading"), tables.length === 0);
  $("tables-loading").textContent = "The database has no tables to back up.";
  show($("pick-tools"), tables.length > 1);
  $("add-limit").disabled = tables.length === 0;
  const flagged = tables.filter((t) => t.demoColumn);
  show($("demo-field"), Boolean(demoData) && flagged.length > 0);
  const columns = [...new Set(flagged.map((t) => t.demoColumn))].join(" or ");
  $("demo-help").textContent = flagged.length
    ? `The rows of ${listed(flagged.map((t) => t.name))} whose ${columns} is set, and the rows that refer to them.`
    : "";
  showPickCount();
}

/** `a`, `a and b`, `a, b and c`. */
function listed(names) {
  return names.length < 2 ? names.join("") : `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}

function pickedTables() {
  return [...$("table-picks").querySelectorAll("input:checked")].map((box) => box.value);
}

function showPickCount() {
  const picked = pickedTables().length;
  const all = backupForm.tables.length;
  $("pick-count").textContent = picked === all ? `all ${formatInt(all)} tables` : `${formatInt(picked)} of ${formatInt(all)} tables`;
}

function pickAll(checked) {
  for (const box of $("table-picks").querySelectorAll("input")) box.checked = checked;
  showPickCount();
}

/** One "table: newest N rows" line, its table chosen from the database's tables. */
function addLimit() {
  const used = new Set(limitRows().map((row) => row.table));
  const free = backupForm.tables.find((name) => !used.has(name)) || backupForm.tables[0];
  const row = el("li", "limit-row");
  const n = $("limits").children.length + 1;
  const select = el("select", "limit-table");
  select.setAttribute("aria-label", `Table to limit (${n})`);
  for (const name of backupForm.tables) {
    const option = el("option", null, name);
    option.value = name;
    option.selected = name === free;
    select.append(option);
  }
  const rows = el("input", "limit-rows num");
  rows.type = "number";
  rows.min = "0";
  rows.step = "1";
  rows.inputMode = "numeric";
  rows.value = String(DEFAULT_LIMIT);
  rows.setAttribute("aria-label", `Newest rows to keep (${n})`);
  const remove = el("button", "btn btn-small limit-remove", "Remove");
  remove.type = "button";
  remove.setAttribute("aria-label", `Remove limit ${n}`);
  remove.addEventListener("click", () => {
    row.remove();
    showMessage($("backup-error"), "");
  });
  row.append(el("span", "limit-word", "Newest"), rows, el("span", "limit-word", "rows of"), select, remove);
  $("limits").append(row);
  rows.focus();
  rows.select();
}

function limitRows() {
  return [...$("limits").children].map((row) => ({
    table: row.querySelector("select").value,
    rows: row.querySelector("input").value.trim(),
  }));
}

/** The request's body, or a sentence saying what is wrong with the form. */
function backupRequest() {
  const picked = pickedTables();
  if (backupForm.tables.length && !picked.length) return { problem: "Tick at least one table to back up." };
  const limits = {};
  for (const { table, rows } of limitRows()) {
    if (!(rows !== "" && Number.isInteger(Number(rows)) && Number(rows) >= 0)) {
      return { problem: `The number of rows for ${table} must be a whole number (0 or more).` };
    }
    if (Object.hasOwn(limits, table)) return { problem: `${table} is limited twice: keep one line for it.` };
    limits[table] = Number(rows);
  }
  const body = { limits, gzip: $("gzip").checked, includeDemoData: !$("leave-out-demo").checked };
  if (picked.length < backupForm.tables.length) body.tables = picked;
  return { body };
}

async function startBackup(event) {
  event.preventDefault();
  showMessage($("backup-error"), "");
  await loadTables();
  const { problem, body } = backupRequest();
  if (problem) return showMessage($("backup-error"), problem);
  const button = $("start-backup");
  button.disabled = true;
  try {
    const { progressId } = await api("/api/backup/jobs", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    startedKinds.set(progressId, "backup");
    openJob(progressId);
  } catch (error) {
    showMessage($("backup-error"), error.message);
  } finally {
    button.disabled = false;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// History

function jobTitle(job) {
  const options = job.options || {};
  if (job.kind === "backup") return `Backup · ${options.gzip === false ? "json" : "gzip"}`;
  const how = options.dryRun ? "dry run" : options.mode || "upsert";
  return `Restore · ${how}`;
}

/** What went where: `file → database` for a restore, `database → file` for a backup, as
 * `rowvault jobs` says it. */
function jobSource(job) {
  const file = job.file || (job.undoOf ? "safety snapshot" : "–");
  return job.kind === "backup" ? `${job.target || "–"} → ${file}` : `${file} → ${job.target || "–"}`;
}

function jobItem(job) {
  const errorCount = Number(job.errorCount) || 0;
  const status = badgeText(job.status, errorCount);
  const link = el("a", "job-link");
  link.href = `#/job/${encodeURIComponent(job.id)}`;
  link.setAttribute("aria-label", `${jobTitle(job)}: ${jobSource(job)}, ${status}, started ${formatDateTime(job.createdAt)}`);
  const badge = el("span", "badge", status);
  badge.dataset.status = outcome(job.status, errorCount);
  const main = el("span", "job-main");
  const source = el("span", "job-what", jobSource(job));
  source.title = source.textContent;
  main.append(
    el("span", "job-file", jobTitle(job)),
    source,
    el("span", "job-when", `${formatDateTime(job.createdAt)} · ${job.id.slice(0, 8)}`),
  );
  const counts = el("span", "job-meta job-counts num", `${formatInt(job.processed)} / ${formatInt(job.total)} records`);
  if (errorCount) counts.append(el("span", "job-errors", ` · ${plural(errorCount, "error")}`));
  const running = RUNNING.has(job.status);
  const took = formatSeconds(secondsBetween(job.startedAt, job.finishedAt));
  const duration = el("span", "job-meta job-duration num", running && job.startedAt ? `${took} so far` : took);
  link.append(badge, main, counts, duration);
  const item = el("li");
  item.append(link);
  return item;
}

async function loadHistory() {
  showMessage($("history-error"), "");
  try {
    const { jobs } = await api("/api/backup/jobs?limit=50");
    $("jobs").replaceChildren(...jobs.map(jobItem));
    show($("jobs-empty"), jobs.length === 0);
  } catch (error) {
    showMessage($("history-error"), `Could not load the jobs: ${error.message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Start

function redirectJobQuery() {
  const id = new URLSearchParams(location.search).get("job");
  if (id) history.replaceState(null, "", `${location.pathname}#/job/${encodeURIComponent(id)}`);
}

function init() {
  setupTokenDialog();
  setupDropZone();
  $("restore-form").addEventListener("submit", startRestore);
  $("mode").addEventListener("change", showModeHelp);
  showModeHelp();
  $("backup-form").addEventListener("submit", startBackup);
  $("add-limit").addEventListener("click", addLimit);
  $("pick-all").addEventListener("click", () => pickAll(true));
  $("pick-none").addEventListener("click", () => pickAll(false));
  $("cancel").addEventListener("click", cancelJob);
  $("resume").addEventListener("click", resumeJob);
  $("undo").addEventListener("click", undoJob);
  $("history-refresh").addEventListener("click", loadHistory);
  downloadOnClick($("rejects"), () => `rejects-${watch.id}.json`);
  downloadOnClick($("error-report"), () => `errors-${watch.id}.txt`);
  downloadOnClick($("backup-file"), () => (watch.job && watch.job.file) || "rowvault-backup.json.gz");
  window.addEventListener("hashchange", route);
  redirectJobQuery();
  loadConfig();
  route();
}

init();
