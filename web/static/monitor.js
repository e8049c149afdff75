// The monitor's only script: applies what the server's event streams send. No framework, no build step.
// Every text arrives formatted by the server in the viewer's language; this file never builds user-facing text.
"use strict";

(function () {
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
      } else {
        el.textContent = state[key];
      }
    });
  }

  function on(source, name, handler) {
    source.addEventListener(name, function (ev) {
      handler(JSON.parse(ev.data));
    });
  }

  function confirmForms() {
    document.querySelectorAll("button[data-confirm]").forEach(function (button) {
      button.form.addEventListener("submit", function (ev) {
        if (!window.confirm(button.getAttribute("data-confirm"))) ev.preventDefault();
      });
    });
  }

  function jobPage(main) {
    var source = new EventSource(main.getAttribute("data-events"));
    var grid = document.getElementById("frames");
    var logBox = document.getElementById("log-blocks");
    var summary = document.querySelector(".summary");

    on(source, "job", function (state) {
      setFields(summary, state);
      document.querySelectorAll("form[data-action]").forEach(function (form) {
        form.hidden = state.actions.indexOf(form.getAttribute("data-action")) < 0;
      });
    });
    on(source, "tasks", function (data) {
      document.getElementById("tasks").innerHTML = data.html;
    });
    on(source, "blocklist", function (data) {
      // Rendered by the server with the viewer's CSRF token: the unblock forms post like the other actions.
      document.getElementById("blocklist-body").innerHTML = data.html;
      document.getElementById("blocklist").hidden = !data.shown;
    });
    on(source, "frames", function (frames) {
      frames.forEach(function (f) {
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
    });
    on(source, "log", function (blocks) {
      var empty = logBox.querySelector(".log-empty");
      if (empty) empty.hidden = true;
      var atBottom = logBox.scrollHeight - logBox.scrollTop - logBox.clientHeight < 24;
      blocks.forEach(function (b) {
        var block = logBox.querySelector('section[data-key="' + b.key + '"]');
        if (!block) {
          block = document.createElement("section");
          block.className = "log-block";
          block.setAttribute("data-key", b.key);
          block.appendChild(document.createElement("h3"));
          block.appendChild(document.createElement("pre"));
          logBox.insertBefore(block, empty || null);
        }
        block.querySelector("h3").textContent = b.title;
        block.querySelector("pre").textContent = b.text;
      });
      if (atBottom) logBox.scrollTop = logBox.scrollHeight;  // a tail follows new output unless the reader scrolled up
    });
    on(source, "preview", function (data) {
      var section = document.getElementById("preview");
      var video = document.getElementById("preview-video");
      if (!video.getAttribute("src")) video.src = data.url;
      section.hidden = false;
    });
    on(source, "end", function (data) {
      source.close();
      if (data && data.reason === "session") toLogin();  // logged out, revoked or expired meanwhile
    });
  }

  function jobsPage(table) {
    var ids = table.getAttribute("data-live-jobs");
    if (!ids) return;
    var source = new EventSource("/events/jobs?ids=" + encodeURIComponent(ids));
    on(source, "job", function (state) {
      var row = table.querySelector('tr[data-job="' + state.id + '"]');
      if (row) setFields(row, state);
    });
    on(source, "end", function (data) {
      source.close();
      if (data && data.reason === "session") toLogin();  // logged out, revoked or expired meanwhile
    });
  }

  function toLogin() {
    window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname + window.location.search));
  }

  document.addEventListener("DOMContentLoaded", function () {
    confirmForms();
    var main = document.getElementById("main");
    if (main && main.hasAttribute("data-events")) jobPage(main);
    var table = document.querySelector("table[data-live-jobs]");
    if (table) jobsPage(table);
  });
})();
