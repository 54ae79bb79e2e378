// Claims review page. Plain script, no framework, no build step: it must work offline
// and under a CSP that forbids inline script.
//
// Rules this file keeps:
// - The API key lives in sessionStorage for this tab only: never in a URL, localStorage
//   or a cookie. It travels only as the Authorization header of our own fetches.
// - Data is written with textContent / setAttribute, never innerHTML, so a file name or
//   a receipt's text can never become markup.
(function () {
  "use strict";

  const KEY_STORE = "claims-ocr.review.api-key";
  const PAGE_SIZE = 25;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  const FIELD_NAMES = (document.body.dataset.fieldNames || "").split(" ").filter(Boolean);

  const state = {
    cursor: null, // cursor of the queue page on screen (null: the first page)
    previousCursors: [], // cursors of the pages before it, for "Previous page"
    nextCursor: null,
    rows: [], // JobSummary items on screen
    selected: -1, // index in rows of the highlighted row
    item: null, // the JobDetail being reviewed
    original: {}, // field values as shown when the item was opened
    page: 1,
    pageCount: 1,
    pageUrl: null, // object URL of the page image on screen
    pageToken: 0, // guards against a slow image landing on a newer item or page
    activeField: null,
    busy: false,
  };

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  // -- the key -----------------------------------------------------------------------

  function getKey() {
    try {
      return window.sessionStorage.getItem(KEY_STORE);
    } catch (err) {
      return null;
    }
  }

  function setKey(key) {
    window.sessionStorage.setItem(KEY_STORE, key);
  }

  function clearKey() {
    try {
      window.sessionStorage.removeItem(KEY_STORE);
    } catch (err) {
      // storage unavailable: nothing was kept
    }
  }

  // -- talking to the API ------------------------------------------------------------

  async function api(path, options) {
    const opts = options || {};
    const key = getKey();
    if (!key) {
      signOut("Please sign in.");
      throw new ApiError(401, "unauthorized", "Please sign in.");
    }
    const headers = new Headers();
    headers.set("Authorization", "Bearer " + key);
    headers.set("Accept", opts.blob ? "image/png" : "application/json");
    let body;
    if (opts.json !== undefined) {
      headers.set("Content-Type", "application/json");
      body = JSON.stringify(opts.json);
    }
    let response;
    try {
      response = await fetch(path, {
        method: opts.method || "GET",
        headers: headers,
        body: body,
        cache: "no-store",
        credentials: "omit",
        redirect: "error",
        referrerPolicy: "no-referrer",
      });
    } catch (err) {
      throw new ApiError(0, "network", "The server could not be reached; try again.");
    }
    if (!response.ok) {
      let code = "http_" + response.status;
      let message = "The server answered " + response.status + ".";
      try {
        const data = await response.json();
        if (data && data.error) {
          code = data.error.code || code;
          message = data.error.message || message;
        }
      } catch (err) {
        // not JSON: keep the generic message
      }
      if (response.status === 401) {
        signOut("Your key was not accepted: " + message + " Please sign in again.");
      }
      throw new ApiError(response.status, code, message);
    }
    return opts.blob ? response.blob() : response.json();
  }

  /** Say what went wrong, unless it was a 401 (already back at the sign-in form). */
  function report(err, prefix) {
    if (err instanceof ApiError && err.status === 401) {
      return;
    }
    const message = err instanceof ApiError ? err.message : "Something went wrong.";
    setStatus((prefix ? prefix + ": " : "") + message, true);
    if (!(err instanceof ApiError)) {
      window.console.error(err);
    }
  }

  // -- small helpers -----------------------------------------------------------------

  function setStatus(text, isError) {
    const status = $("status");
    status.classList.toggle("is-error", Boolean(isError));
    status.textContent = text;
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    if (className) {
      node.className = className;
    }
    return node;
  }

  function formatConfidence(value) {
    return typeof value === "number" ? Math.round(value * 100) + "%" : "—";
  }

  function formatAge(seconds) {
    const s = Math.max(0, Number(seconds) || 0);
    if (s < 60) return "< 1 min";
    const minutes = Math.floor(s / 60);
    if (minutes < 60) return minutes + " min";
    const hours = Math.floor(minutes / 60);
    if (hours < 24) return hours + " h " + (minutes % 60) + " min";
    return Math.floor(hours / 24) + " d " + (hours % 24) + " h";
  }

  function fieldLabel(name) {
    const words = name.replace(/_/g, " ");
    return words.charAt(0).toUpperCase() + words.slice(1);
  }

  function isTyping(target) {
    if (!target || !target.tagName) return false;
    const tag = target.tagName.toLowerCase();
    if (tag === "textarea" || tag === "select" || target.isContentEditable) return true;
    if (tag !== "input") return false;
    const type = (target.getAttribute("type") || "text").toLowerCase();
    return !["button", "submit", "reset", "checkbox", "radio"].includes(type);
  }

  // -- sign in and out ---------------------------------------------------------------

  function showSignin(message) {
    $("workspace").hidden = true;
    $("sign-out").hidden = true;
    $("signin").hidden = false;
    $("signin-error").textContent = message || "";
    $("api-key").value = "";
    $("api-key").focus();
  }

  function signOut(message) {
    clearKey();
    closeItem(false);
    state.rows = [];
    state.selected = -1;
    state.cursor = null;
    state.previousCursors = [];
    state.nextCursor = null;
    $("queue-rows").replaceChildren();
    $("queue-total").textContent = "";
    setStatus(message ? "" : "Signed out.");
    showSignin(message);
  }

  async function signIn(event) {
    event.preventDefault();
    const input = $("api-key");
    const key = input.value.trim();
    input.value = "";
    if (!key) {
      $("signin-error").textContent = "Enter your API key.";
      input.focus();
      return;
    }
    setKey(key);
    await start("Signed in.");
  }

  async function start(greeting) {
    $("signin").hidden = true;
    $("signin-error").textContent = "";
    $("workspace").hidden = false;
    $("sign-out").hidden = false;
    try {
      const page = await loadQueue(null, []);
      setStatus(greeting + " " + page.total + " waiting for review.");
      if (state.rows.length) {
        select(0, true);
      } else {
        $("queue-refresh").focus();
      }
    } catch (err) {
      report(err, "The queue could not be loaded");
    }
  }

  // -- the queue ---------------------------------------------------------------------

  async function loadQueue(cursor, previousCursors) {
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (cursor) params.set("cursor", cursor);
    const page = await api("/api/v1/exceptions?" + params.toString());
    state.cursor = cursor;
    state.previousCursors = previousCursors;
    state.nextCursor = page.next_cursor || null;
    state.rows = Array.isArray(page.items) ? page.items : [];
    state.selected = state.rows.length ? Math.min(Math.max(state.selected, 0), state.rows.length - 1) : -1;
    $("queue-total").textContent = page.total + " waiting";
    renderQueue();
    return page;
  }

  function renderQueue() {
    const body = $("queue-rows");
    const openId = state.item ? state.item.id : null;
    body.replaceChildren();
    state.rows.forEach(function (row, index) {
      const tr = document.createElement("tr");
      tr.dataset.index = String(index);
      tr.dataset.jobId = row.id;
      if (index === state.selected) tr.classList.add("selected");
      if (row.id === openId) {
        tr.classList.add("current");
        tr.setAttribute("aria-current", "true");
      }
      const fileCell = document.createElement("td");
      const open = el("button", row.filename || "(no file name)");
      open.type = "button";
      open.className = "open-item";
      open.addEventListener("click", function () {
        select(index, false);
        openItem(row.id);
      });
      open.addEventListener("focus", function () {
        select(index, false);
      });
      fileCell.append(open);
      const conf = el("td", formatConfidence(row.confidence), "num");
      const age = el("td", formatAge(row.age_s), "num");
      tr.append(fileCell, el("td", row.reason_code || "—"), conf, age);
      body.append(tr);
    });
    $("queue-empty").hidden = state.rows.length > 0;
    $("queue-prev").disabled = state.previousCursors.length === 0;
    $("queue-first").disabled = state.cursor === null;
    $("queue-next").disabled = !state.nextCursor;
  }

  function select(index, focus) {
    if (index < 0 || index >= state.rows.length) return;
    state.selected = index;
    $("queue-rows")
      .querySelectorAll("tr")
      .forEach(function (tr) {
        tr.classList.toggle("selected", tr.dataset.index === String(index));
      });
    if (focus) {
      const button = $("queue-rows").querySelector('tr[data-index="' + index + '"] button');
      if (button) button.focus();
    }
  }

  function moveSelection(step) {
    if (!state.rows.length) return;
    const from = state.selected < 0 ? (step > 0 ? -1 : state.rows.length) : state.selected;
    select(Math.min(Math.max(from + step, 0), state.rows.length - 1), true);
  }

  async function queuePage(which) {
    try {
      if (which === "next" && state.nextCursor) {
        await loadQueue(state.nextCursor, state.previousCursors.concat([state.cursor]));
      } else if (which === "prev" && state.previousCursors.length) {
        const previous = state.previousCursors.slice(0, -1);
        await loadQueue(state.previousCursors[state.previousCursors.length - 1], previous);
      } else if (which === "first") {
        await loadQueue(null, []);
      } else {
        await loadQueue(state.cursor, state.previousCursors);
      }
      state.selected = state.rows.length ? 0 : -1;
      renderQueue();
      setStatus("Queue loaded: " + state.rows.length + " shown.");
    } catch (err) {
      report(err, "The queue could not be loaded");
    }
  }

  // -- one item ----------------------------------------------------------------------

  async function openItem(jobId) {
    setStatus("Opening…");
    let job;
    try {
      job = await api("/api/v1/exceptions/" + encodeURIComponent(jobId));
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        setStatus("That document is no longer waiting for review.", true);
        await queuePage("same");
        return;
      }
      report(err, "The document could not be opened");
      return;
    }
    showItem(job);
    setStatus("Opened " + (job.filename || "the document") + ".");
  }

  function currentValues(job) {
    const values = {};
    const fields = job.fields || {};
    const corrected = job.corrected_fields || {};
    const names = FIELD_NAMES.slice();
    Object.keys(fields)
      .concat(Object.keys(corrected))
      .forEach(function (name) {
        if (!names.includes(name)) names.push(name);
      });
    names.forEach(function (name) {
      const value = Object.prototype.hasOwnProperty.call(corrected, name)
        ? corrected[name]
        : fields[name];
      values[name] = value === null || value === undefined ? "" : String(value);
    });
    return values;
  }

  function showItem(job) {
    state.item = job;
    state.original = currentValues(job);
    state.activeField = null;
    state.pageCount = Math.max(1, Number(job.page_count) || 1);
    $("item").hidden = false;
    $("item-title").textContent = job.filename || "(no file name)";
    $("approve-error").textContent = "";
    $("reject-error").textContent = "";
    $("reject-reason").value = "";

    const reasons = $("item-reasons");
    reasons.replaceChildren();
    (job.reasons || []).forEach(function (reason) {
      const li = document.createElement("li");
      li.append(el("code", reason.code), document.createTextNode(" — " + (reason.message || "")));
      reasons.append(li);
    });

    const meta = $("item-meta");
    meta.replaceChildren();
    const email = job.email || {};
    [
      ["Confidence", formatConfidence(job.confidence)],
      ["Waiting", formatAge(job.age_s)],
      ["Received", email.received_at],
      ["From", email.sender_masked],
      ["Policy number", email.policy_number],
      ["Member ID", email.member_id],
      ["Member name", email.member_name],
    ].forEach(function (pair) {
      if (pair[1] === undefined || pair[1] === null || pair[1] === "") return;
      meta.append(el("dt", pair[0]), el("dd", pair[1]));
    });

    renderFields(job);
    renderQueue();
    const evidence = job.field_evidence || {};
    const firstPage = Object.keys(evidence).length
      ? Math.min.apply(
          null,
          Object.keys(evidence).map(function (name) {
            return Number(evidence[name].page) || 1;
          })
        )
      : 1;
    showPage(Math.min(firstPage, state.pageCount));
    $("item-title").focus();
  }

  function renderFields(job) {
    const container = $("fields");
    container.replaceChildren();
    const confidence = job.field_confidence || {};
    const evidence = job.field_evidence || {};
    Object.keys(state.original).forEach(function (name) {
      const wrap = el("div", null, "field");
      wrap.dataset.field = name;
      const id = "field-" + name;
      const label = el("label", fieldLabel(name));
      label.htmlFor = id;
      const input = document.createElement("input");
      input.type = "text";
      input.id = id;
      input.name = name;
      input.autocomplete = "off";
      input.spellcheck = false;
      input.value = state.original[name];
      input.dataset.field = name;
      const hintParts = [];
      if (evidence[name]) {
        hintParts.push('Read "' + (evidence[name].text || "") + '" on page ' + evidence[name].page);
      } else {
        hintParts.push("Not found on the document");
      }
      if (typeof confidence[name] === "number") {
        hintParts.push("confidence " + formatConfidence(confidence[name]));
      }
      const hint = el("span", hintParts.join(" · "), "hint");
      hint.id = "hint-" + name;
      input.setAttribute("aria-describedby", hint.id);
      input.addEventListener("input", function () {
        wrap.classList.toggle("changed", input.value.trim() !== state.original[name].trim());
      });
      input.addEventListener("focus", function () {
        setActiveField(name);
      });
      input.addEventListener("keydown", function (event) {
        if (event.key === "Enter") {
          event.preventDefault(); // Enter in a field never approves by accident
        }
      });
      wrap.append(label, input, hint);
      container.append(wrap);
    });
  }

  function setActiveField(name) {
    state.activeField = name;
    document.querySelectorAll("#fields .field").forEach(function (wrap) {
      wrap.classList.toggle("active", wrap.dataset.field === name);
    });
    const evidence = state.item && (state.item.field_evidence || {})[name];
    if (evidence && Number(evidence.page) !== state.page) {
      showPage(Number(evidence.page));
    } else {
      highlightBoxes();
    }
  }

  function highlightBoxes() {
    $("page-overlay")
      .querySelectorAll("polygon")
      .forEach(function (polygon) {
        polygon.classList.toggle("active", polygon.dataset.field === state.activeField);
      });
  }

  async function showPage(n) {
    const job = state.item;
    if (!job || n < 1 || n > state.pageCount) return;
    state.page = n;
    const token = ++state.pageToken;
    $("page-label").textContent = "Page " + n + " of " + state.pageCount;
    $("page-switcher").hidden = state.pageCount < 2;
    $("page-prev").disabled = n <= 1;
    $("page-next").disabled = n >= state.pageCount;
    drawOverlay();
    const img = $("page-image");
    img.alt = "Page " + n + " of " + (job.filename || "the document");
    try {
      const blob = await api(
        "/api/v1/jobs/" + encodeURIComponent(job.id) + "/pages/" + n + ".png",
        { blob: true }
      );
      if (token !== state.pageToken) return; // another item or page was asked for since
      releasePageUrl();
      state.pageUrl = URL.createObjectURL(blob);
      img.src = state.pageUrl;
    } catch (err) {
      if (token === state.pageToken) report(err, "The page image could not be loaded");
    }
  }

  function releasePageUrl() {
    if (state.pageUrl) {
      URL.revokeObjectURL(state.pageUrl);
      state.pageUrl = null;
    }
  }

  /** One polygon per field read on this page; the viewBox is the page's pixel size. */
  function drawOverlay() {
    const svg = $("page-overlay");
    svg.replaceChildren();
    const job = state.item;
    if (!job) return;
    const evidence = job.field_evidence || {};
    let width = 0;
    let height = 0;
    Object.keys(evidence).forEach(function (name) {
      const ev = evidence[name];
      if (!ev || Number(ev.page) !== state.page || !Array.isArray(ev.polygon)) return;
      width = width || Number(ev.page_width);
      height = height || Number(ev.page_height);
      const polygon = document.createElementNS(SVG_NS, "polygon");
      const points = ev.polygon
        .map(function (point) {
          return Number(point[0]) + "," + Number(point[1]);
        })
        .join(" ");
      polygon.setAttribute("points", points);
      polygon.dataset.field = name;
      polygon.id = "box-" + name;
      if (name === state.activeField) polygon.classList.add("active");
      const title = document.createElementNS(SVG_NS, "title");
      title.textContent = fieldLabel(name);
      polygon.append(title);
      svg.append(polygon);
    });
    const img = $("page-image");
    width = width || img.naturalWidth;
    height = height || img.naturalHeight;
    if (width > 0 && height > 0) {
      svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    } else {
      svg.removeAttribute("viewBox");
    }
  }

  function closeItem(focusQueue) {
    state.item = null;
    state.pageToken++;
    releasePageUrl();
    const img = $("page-image");
    img.removeAttribute("src");
    img.alt = "";
    $("page-overlay").replaceChildren();
    $("fields").replaceChildren();
    $("item-reasons").replaceChildren();
    $("item-meta").replaceChildren();
    $("item-title").textContent = "";
    $("item").hidden = true;
    renderQueue();
    if (focusQueue) {
      if (state.rows.length) {
        select(Math.max(state.selected, 0), true);
      } else {
        $("queue-refresh").focus();
      }
    }
  }

  // -- decisions ---------------------------------------------------------------------

  function changedFields() {
    const changed = {};
    document.querySelectorAll("#fields input").forEach(function (input) {
      const name = input.dataset.field;
      const value = input.value.trim();
      if (value !== (state.original[name] || "").trim()) {
        changed[name] = value === "" ? null : value;
      }
    });
    return changed;
  }

  function setBusy(busy) {
    state.busy = busy;
    $("approve").disabled = busy;
    $("reject").disabled = busy;
  }

  async function approve() {
    const job = state.item;
    if (!job || state.busy) return;
    const changed = changedFields();
    const body = Object.keys(changed).length ? { fields: changed } : {};
    await decide(job, "approve", body, "Approved");
  }

  async function reject() {
    const job = state.item;
    if (!job || state.busy) return;
    const reason = $("reject-reason").value.trim();
    if (!reason) {
      $("reject-error").textContent = "Type the reason for rejecting first.";
      $("reject-reason").focus();
      return;
    }
    await decide(job, "reject", { reason: reason }, "Rejected");
  }

  async function decide(job, action, body, done) {
    const name = job.filename || "the document";
    setBusy(true);
    $("approve-error").textContent = "";
    $("reject-error").textContent = "";
    setStatus((action === "approve" ? "Approving " : "Rejecting ") + name + "…");
    try {
      await api("/api/v1/exceptions/" + encodeURIComponent(job.id) + "/" + action, {
        method: "POST",
        json: body,
      });
      await openNext(job.id, done + " " + name + ".");
    } catch (err) {
      if (err instanceof ApiError && err.status === 409) {
        await openNext(
          job.id,
          "Someone else already acted on this item (" + name + "): " + err.message,
          true
        );
      } else if (err instanceof ApiError && err.status === 422) {
        $(action === "approve" ? "approve-error" : "reject-error").textContent = err.message;
        setStatus("Not saved: " + err.message, true);
      } else {
        report(err, "Not saved");
      }
    } finally {
      setBusy(false);
    }
  }

  /** After a decision the item leaves the queue and the one after it opens. */
  async function openNext(doneId, message, isError) {
    const index = state.rows.findIndex(function (row) {
      return row.id === doneId;
    });
    try {
      await loadQueue(state.cursor, state.previousCursors);
      if (!state.rows.length && state.cursor !== null) {
        await loadQueue(null, []);
      }
    } catch (err) {
      report(err, "The queue could not be reloaded");
      return;
    }
    const remaining = state.rows.filter(function (row) {
      return row.id !== doneId;
    });
    if (!remaining.length) {
      closeItem(true);
      setStatus(message + " The queue is empty.", isError);
      return;
    }
    const next = remaining[Math.min(Math.max(index, 0), remaining.length - 1)];
    select(state.rows.indexOf(next), false);
    await openItem(next.id);
    setStatus(message + " Next: " + (next.filename || "a document") + ".", isError);
  }

  // -- keyboard ----------------------------------------------------------------------

  function onKeydown(event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if ($("workspace").hidden) return;
    const target = event.target;
    if (isTyping(target)) {
      if (event.key === "Escape") {
        event.preventDefault();
        target.blur();
        (state.item ? $("item-title") : $("main")).focus();
      }
      return;
    }
    const onControl = target && /^(button|a|summary)$/i.test(target.tagName || "");
    switch (event.key) {
      case "j":
        moveSelection(1);
        break;
      case "k":
        moveSelection(-1);
        break;
      case "Enter":
        if (onControl || state.selected < 0) return; // a focused button clicks itself
        openItem(state.rows[state.selected].id);
        break;
      case "a":
        approve();
        break;
      case "r":
        reject();
        break;
      case "e": {
        const first = $("fields").querySelector("input");
        if (!first) return;
        first.focus();
        first.select();
        break;
      }
      case "[":
        showPage(state.page - 1);
        break;
      case "]":
        showPage(state.page + 1);
        break;
      case "u":
        if (!state.item) return;
        closeItem(true);
        break;
      default:
        return;
    }
    event.preventDefault();
  }

  // -- wiring ------------------------------------------------------------------------

  function init() {
    $("signin-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", function () {
      signOut();
    });
    $("queue-first").addEventListener("click", function () {
      queuePage("first");
    });
    $("queue-prev").addEventListener("click", function () {
      queuePage("prev");
    });
    $("queue-next").addEventListener("click", function () {
      queuePage("next");
    });
    $("queue-refresh").addEventListener("click", function () {
      queuePage("same");
    });
    $("item-close").addEventListener("click", function () {
      closeItem(true);
    });
    $("page-prev").addEventListener("click", function () {
      showPage(state.page - 1);
    });
    $("page-next").addEventListener("click", function () {
      showPage(state.page + 1);
    });
    $("page-image").addEventListener("load", drawOverlay);
    $("fields-form").addEventListener("submit", function (event) {
      event.preventDefault();
      approve();
    });
    $("reject-form").addEventListener("submit", function (event) {
      event.preventDefault();
      reject();
    });
    document.addEventListener("keydown", onKeydown);
    window.addEventListener("pagehide", releasePageUrl);

    if (getKey()) {
      start("Welcome back.");
    } else {
      showSignin("");
    }
  }

  init();
})();
