// The monitor's only page script: applies what the server's event stream sends. No framework, no build step.
// Every text arrives formatted by the server in the viewer's language; this file never builds user-facing text.
// All tabs of a browser share ONE stream through a SharedWorker (monitor-worker.js); where there is no
// SharedWorker (some phone browsers) a tab opens its own stream on the same /events endpoint.
"use strict";

(function () {
  var WORKER = "/static/monitor-worker.js?v=2";

  function setFields(root, state) {
    root.querySelectorAll("[data-f]").forEach(function (el) {
      var key = el.getAttribute("data-f");
      if (!(key in state)) return;
      if (el.tagName === "PROGRESS") {
        el.value = state[key];
        el.textContent = state.percent;
      } else if (key === "status_label") {
        el.textContent = state.status_label;
        el.className = "status status-" + state.status;
        el.setAttribute("data-status", state.status);
      } else if (key === "reason") {
        el.textContent = state.reason;
        el.hidden = !state.reason;
        el.className = "reason reason-" + state.severity;
        el.setAttribute("data-severity", state.severity);
      } else {
        el.textContent = state[key];
      }
    });
  }

  function toLogin() {
    window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname + window.location.search));
  }

  // Calls handler(kind, data) for every update of the topics; goes to the login page when the session ends.
  function watch(topics, handler) {
    // The page's language: the stream renders its texts in it (a worker's requests may not carry the page's
    // Accept-Language).
    var lang = document.body.getAttribute("data-locale") || "";
    function deliver(message) {
      if (message.type === "end") {
        if (message.data && message.data.reason === "session") toLogin();  // logged out, revoked or expired
        return;
      }
      if (topics.indexOf(message.topic) < 0) return;
      handler(message.kind, message.data);
      document.body.setAttribute("data-live-seen", "yes");  // the page is live (tests and curious readers)
    }
    if (window.SharedWorker) {
      try {
        var port = new SharedWorker(WORKER, {name: "farm-monitor"}).port;
        port.onmessage = function (ev) { deliver(ev.data); };
        port.postMessage({watch: topics, lang: lang});
        var ping = setInterval(function () { port.postMessage({ping: true}); }, 15000);
        window.addEventListener("pagehide", function () {
          clearInterval(ping);
          port.postMessage({bye: true});
        });
        window.addEventListener("pageshow", function (ev) {
          if (ev.persisted) port.postMessage({watch: topics, lang: lang});  // back from the back/forward cache
        });
        return;
      } catch (e) { /* blocked (e.g. a privacy mode): fall back to a stream of this tab's own */ }
    }
    var url = "/events?" + topics.map(function (t) { return "watch=" + encodeURIComponent(t); }).join("&") +
      "&lang=" + encodeURIComponent(lang);
    var source = new EventSource(url);
    source.addEventListener("m", function (ev) { deliver(Object.assign({type: "m"}, JSON.parse(ev.data))); });
    source.addEventListener("end", function (ev) {
      source.close();
      deliver({type: "end", data: ev.data ? JSON.parse(ev.data) : {}});
    });
    source.addEventListener("error", function () {
      if (source.readyState === EventSource.CLOSED) deliver({type: "end", data: {reason: "session"}});
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  // The button that submits a form, for browsers without SubmitEvent.submitter.
  var pressed = null;

  // One listener for every form of the page, including rows and sections the stream redraws after load (chunk
  // buttons, unblock buttons): a button's data-confirm asks first; the chunk buttons then post in the background
  // so the page stays where it is and the stream shows the chunk's new state.
  function onSubmit(ev) {
    var form = ev.target;
    var button = ev.submitter || (pressed && pressed.form === form ? pressed : null);
    pressed = null;
    var ask = button ? button.getAttribute("data-confirm") : null;
    if (!button) {  // Enter in a field: the form's first confirming button speaks for it
      var own = form.querySelector("button[data-confirm]");
      ask = own ? own.getAttribute("data-confirm") : null;
    }
    if (ask && !window.confirm(ask)) {
      ev.preventDefault();
      return;
    }
    if (form.id === "chunk-actions" && !form.hasAttribute("data-plain") && window.fetch) {
      ev.preventDefault();
      sendChunkAction(form, button);
    }
  }

  function showRefusal(text) {
    var flash = document.getElementById("chunk-flash");
    if (!flash) return;
    document.getElementById("chunk-flash-text").textContent = text;
    flash.hidden = !text;
  }

  // Posts a chunk's Requeue or Cancel; a refusal is shown above the chunks in the words of the server's error page
  // (the viewer's language). Without a network answer, the plain form post takes over.
  function sendChunkAction(form, button) {
    var body = new URLSearchParams(new FormData(form));
    if (button && button.name) body.append(button.name, button.value);
    fetch(form.action, {method: "POST", body: body, credentials: "same-origin", redirect: "manual"})
      .then(function (r) {
        if (r.type === "opaqueredirect" || r.ok) {  // done: the stream redraws the chunk
          showRefusal("");
          return null;
        }
        return r.text().then(function (html) {
          var page = new DOMParser().parseFromString(html, "text/html");
          var said = page.getElementById("error-text");
          showRefusal((said ? said.textContent : String(r.status)).replace(/\s+/g, " ").trim());
        });
      })
      .catch(function () {
        form.setAttribute("data-plain", "");
        if (button && form.requestSubmit) form.requestSubmit(button); else form.submit();
      });
  }

  function frames(grid, list) {
    list.forEach(function (f) {
      var tile = grid.querySelector('li[data-frame="' + f.frame + '"]');
      if (tile && tile.getAttribute("data-version") === f.version) return;
      if (!tile) {
        tile = document.createElement("li");
        tile.setAttribute("data-frame", String(f.frame));
        var cap = document.createElement("span");
        cap.className = "cap";
        cap.textContent = String(f.frame);
        tile.appendChild(cap);
        grid.appendChild(tile);
      }
      var link = document.createElement("a");
      link.href = f.image;
      var img = document.createElement("img");
      img.src = f.thumb;
      img.alt = f.label;
      img.width = 160;
      link.appendChild(img);
      var old = tile.querySelector("a, .pending");
      if (old) tile.replaceChild(link, old); else tile.insertBefore(link, tile.firstChild);
      tile.setAttribute("data-version", f.version);
      tile.classList.add("done");
    });
  }

  function logs(logBox, blocks) {
    var empty = logBox.querySelector(".log-empty");
    if (empty) empty.hidden = true;
    blocks.forEach(function (b) {
      var block = logBox.querySelector('section[data-key="' + b.key + '"]');
      if (!block) {
        block = document.createElement("section");
        block.className = "log-block";
        block.setAttribute("data-key", b.key);
        var head = document.createElement("h3");
        var title = document.createElement("span");
        title.className = "log-title";
        var link = document.createElement("a");
        link.className = "log-download";
        link.setAttribute("download", "");
        head.appendChild(title);
        head.appendChild(document.createTextNode(" "));
        head.appendChild(link);
        block.appendChild(head);
        block.appendChild(document.createElement("pre"));
        logBox.insertBefore(block, empty || null);
      }
      block.querySelector(".log-title").textContent = b.title;
      var download = block.querySelector(".log-download");
      download.href = b.download;
      download.textContent = b.download_label;
      block.querySelector("pre").textContent = b.text;
    });
    filterLog();
    var follow = document.getElementById("log-follow");
    if (follow && follow.checked) logBox.scrollTop = logBox.scrollHeight;  // follow mode: keep the newest in view
  }

  // Shows only the attempts whose title or output contains the search text (case-blind).
  function filterLog() {
    var box = document.getElementById("log-blocks");
    var input = document.getElementById("log-search");
    if (!box || !input) return;
    var wanted = input.value.trim().toLowerCase();
    var shown = 0;
    box.querySelectorAll("section.log-block").forEach(function (block) {
      var hit = !wanted || block.textContent.toLowerCase().indexOf(wanted) >= 0;
      block.hidden = !hit;
      if (hit) shown += 1;
    });
    var none = box.querySelector(".log-nomatch");
    if (none) none.hidden = !wanted || shown > 0;
  }

  function jobPage(main, topic) {
    var summary = document.querySelector(".summary");
    var handlers = {
      job: function (state) {
        setFields(summary, state);
        document.querySelectorAll("form[data-action]").forEach(function (form) {
          form.hidden = state.actions.indexOf(form.getAttribute("data-action")) < 0;
        });
        var priority = document.getElementById("priority-form");
        if (priority && "edit_priority" in state) priority.hidden = !state.edit_priority;
      },
      tasks: function (data) { document.getElementById("tasks").innerHTML = data.html; },
      blocklist: function (data) {
        // Rendered by the server with the viewer's CSRF token: the unblock forms post like the other actions.
        document.getElementById("blocklist-body").innerHTML = data.html;
        document.getElementById("blocklist").hidden = !data.shown;
      },
      frames: function (list) { frames(document.getElementById("frames"), list); },
      log: function (blocks) { logs(document.getElementById("log-blocks"), blocks); },
      preview: function (data) {
        var video = document.getElementById("preview-video");
        if (!video.getAttribute("src")) video.src = data.url;
        document.getElementById("preview").hidden = false;
      },
      gone: function () { window.location.reload(); }  // shows the server's 404 page
    };
    watch([topic], function (kind, data) { if (handlers[kind]) handlers[kind](data); });
  }

  function jobsPage(main, topic) {
    var body = document.getElementById("jobs-body");
    var template = document.createElement("tbody");
    watch([topic], function (kind, data) {
      if (kind === "row") {
        var row = body.querySelector('tr[data-job="' + data.id + '"]');
        if (row) setFields(row, data);
      } else if (kind === "list") {
        // The jobs on this page changed (a new job, a finished filter match): rebuild the order, keep known rows.
        var known = {};
        body.querySelectorAll("tr[data-job]").forEach(function (tr) { known[tr.getAttribute("data-job")] = tr; });
        data.ids.forEach(function (id) {
          var tr = known[id];
          if (!tr && data.rows[id]) {
            template.innerHTML = data.rows[id];
            tr = template.querySelector("tr");
          }
          if (tr) body.appendChild(tr);
          delete known[id];
        });
        Object.keys(known).forEach(function (id) { known[id].remove(); });
        document.getElementById("jobs-count").textContent = data.count;
        document.getElementById("jobs-wrap").hidden = data.ids.length === 0;
        document.getElementById("jobs-empty").hidden = data.ids.length !== 0;
      }
    });
  }

  // A part the server renders whole: redrawn only when its fingerprint changed (not by a stream's first update).
  function wholePart(topic, kind, id) {
    var box = document.getElementById(id);
    watch([topic], function (got, data) {
      if (got !== kind || box.getAttribute("data-version") === data.version) return;
      box.innerHTML = data.html;
      box.setAttribute("data-version", data.version);
    });
  }

  function pickAll() {
    var all = document.getElementById("pick-all");
    if (!all) return;
    all.addEventListener("change", function () {
      document.querySelectorAll('#jobs-body input[name="job"]').forEach(function (box) { box.checked = all.checked; });
    });
  }

  document.addEventListener("click", function (ev) {
    var target = ev.target;
    pressed = target && target.closest ? target.closest("button, input[type=submit]") : null;
  }, true);
  document.addEventListener("submit", onSubmit);

  document.addEventListener("DOMContentLoaded", function () {
    pickAll();
    var search = document.getElementById("log-search");
    if (search) search.addEventListener("input", filterLog);
    var main = document.getElementById("main");
    var topic = main && main.getAttribute("data-watch");
    if (!topic) return;
    if (topic.indexOf("job:") === 0) jobPage(main, topic);
    else if (topic.indexOf("list:") === 0) jobsPage(main, topic);
    else if (topic === "workers") wholePart(topic, "workers", "workers-table");
    else if (topic.indexOf("usage:") === 0) wholePart(topic, "usage", "usage-body");
  });
})();
