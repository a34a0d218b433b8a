// Live progress for the request and point pages: poll the JSON API, update the
// states in place, redraw the graph of steps, and reload once everything has
// finished (the page then shows the results). Pages work without this file.
(function () {
  "use strict";
  var POLL_MS = 2000;
  var FINISHED = ["succeeded", "failed", "cancelled"];

  function setStatus(element, status) {
    if (!element || element.textContent === status) { return; }
    element.textContent = status;
    element.className = "status status-" + status;
  }

  function runningStep(run) {
    var steps = run.steps || [];
    for (var i = steps.length - 1; i >= 0; i--) {
      if (steps[i].status === "running") { return steps[i].name; }
    }
    return "";
  }

  function refreshGraph(root) {
    var image = root.querySelector("img[data-graph]");
    if (image) { image.src = image.getAttribute("data-graph") + "?t=" + Date.now(); }
  }

  function updateSteps(root, run) {
    (run.steps || []).forEach(function (step) {
      var row = root.querySelector('#steps tr[data-step="' + CSS.escape(step.name) + '"]');
      if (!row) { return; }
      setStatus(row.querySelector('[data-field="status"]'), step.status);
      var code = row.querySelector('[data-field="exit_code"]');
      if (code) { code.textContent = step.exit_code === null ? "" : String(step.exit_code); }
    });
    // A step the table has no row for yet (retries repeat names): reload.
    var names = {};
    (run.steps || []).forEach(function (step) { names[step.name] = true; });
    var known = root.querySelectorAll("#steps tr[data-step]").length;
    return Object.keys(names).length > known;
  }

  function refreshLogs(root) {
    root.querySelectorAll("details.log[open]").forEach(function (details) {
      fetch(details.getAttribute("data-log"), { credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (text) {
          if (text === null) { return; }
          var lines = text.split("\n");
          details.querySelector("pre").textContent = lines.slice(-200).join("\n") || "(empty)";
        })
        .catch(function () {});
    });
  }

  function followedRun(root) {
    var image = root.querySelector("img[data-run]");
    return image ? image.getAttribute("data-run") : null;
  }

  function pollRequest(root, url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { if (!response.ok) { throw new Error(response.status); } return response.json(); })
      .then(function (request) {
        setStatus(root.querySelector('[data-field="request-status"]'), request.status);
        var counts = request.counts, total = request.runs.length;
        var done = counts.succeeded + counts.failed + counts.cancelled;
        var progress = root.querySelector("#progress");
        if (progress) { progress.value = done; progress.textContent = done + " of " + total; }
        var text = root.querySelector('[data-field="counts"]');
        if (text) {
          text.textContent = done + " of " + total + " finished: " + counts.succeeded + " succeeded, " +
            counts.running + " running, " + counts.queued + " queued, " + counts.failed + " failed, " +
            counts.cancelled + " cancelled";
        }
        var changed = false;
        request.runs.forEach(function (run) {
          var row = root.querySelector('#points tr[data-run="' + run.id + '"]');
          if (!row) { return; }
          var status = row.querySelector('[data-field="status"]');
          if (status && status.textContent !== run.status && FINISHED.indexOf(run.status) >= 0) { changed = true; }
          setStatus(status, run.status);
          var step = row.querySelector('[data-field="step"]');
          if (step) { step.textContent = runningStep(run); }
          if (followedRun(root) && followedRun(root).indexOf(run.id) >= 0) {
            if (updateSteps(root, run)) { changed = true; }
          }
        });
        refreshGraph(root);
        refreshLogs(root);
        if (FINISHED.indexOf(request.status) >= 0 || changed) { window.location.reload(); return false; }
        return true;
      });
  }

  function pollRun(root, url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { if (!response.ok) { throw new Error(response.status); } return response.json(); })
      .then(function (run) {
        setStatus(root.querySelector('[data-field="run-status"]'), run.status);
        var added = updateSteps(root, run);
        refreshGraph(root);
        refreshLogs(root);
        if (FINISHED.indexOf(run.status) >= 0 || added) { window.location.reload(); return false; }
        return true;
      });
  }

  function start() {
    var root = document.getElementById("live");
    if (!root || root.getAttribute("data-finished") === "true") { return; }
    var requestUrl = root.getAttribute("data-request");
    var runUrl = root.getAttribute("data-run");
    function tick() {
      var polled = requestUrl ? pollRequest(root, requestUrl) : pollRun(root, runUrl);
      polled.then(function (again) { if (again) { window.setTimeout(tick, POLL_MS); } })
        .catch(function () { window.setTimeout(tick, POLL_MS * 3); });
    }
    window.setTimeout(tick, POLL_MS);
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();

// The submit form: show only the fields of the chosen kind of submission.
(function () {
  "use strict";
  var GROUPS = { point: "group-point", patches: "group-patches", scan: "group-patches", patchset: "group-patchset" };

  function show(form) {
    var chosen = form.querySelector('input[name="mode"]:checked');
    if (!chosen) { return; }
    Object.keys(GROUPS).forEach(function (mode) {
      var group = document.getElementById(GROUPS[mode]);
      if (group) { group.hidden = GROUPS[chosen.value] !== GROUPS[mode]; }
    });
    var pattern = document.getElementById("field-scan"), patches = document.getElementById("field-patches");
    if (pattern && patches) {
      pattern.hidden = chosen.value !== "scan";
      patches.hidden = chosen.value !== "patches";
    }
  }

  function start() {
    document.querySelectorAll("form.submit").forEach(function (form) {
      form.querySelectorAll('input[name="mode"]').forEach(function (radio) {
        radio.addEventListener("change", function () { show(form); });
      });
      show(form);
    });
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
