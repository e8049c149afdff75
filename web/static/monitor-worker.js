// The monitor's shared worker: ONE event stream for every monitor tab of this browser. A browser allows six
// connections per host over HTTP/1.1, so a stream per tab hung the seventh tab and its actions.
// Each tab posts {watch: [topics]} when it opens and {bye: true} when it goes; the worker keeps one EventSource on
// /events?watch=... for the union of the topics and forwards each update to the tabs that watch its topic.
// A tab that joins makes the stream reconnect, so the server sends it (and everyone) the whole state again.
"use strict";

var tabs = [];        // {port, topics, seen}
var lang = "";        // the page language of the tab that spoke last (a language switch applies to the browser)
var source = null;
var current = "";
var timer = null;
var TAB_SILENT_MS = 45000;  // a tab that crashed never says bye; it stops pinging instead

function topicsOf(list) {
  var all = {};
  list.forEach(function (tab) { tab.topics.forEach(function (t) { all[t] = true; }); });
  return Object.keys(all).sort();
}

function urlFor(topics) {
  var query = topics.map(function (t) { return "watch=" + encodeURIComponent(t); });
  if (lang) query.push("lang=" + encodeURIComponent(lang));
  return "/events?" + query.join("&");
}

function forward(message) {
  tabs.forEach(function (tab) {
    if (message.type !== "m" || tab.topics.indexOf(message.topic) >= 0) tab.port.postMessage(message);
  });
}

function connect(force) {
  timer = null;
  var now = Date.now();
  tabs = tabs.filter(function (tab) { return now - tab.seen < TAB_SILENT_MS; });
  var topics = topicsOf(tabs);
  var url = topics.length ? urlFor(topics) : "";
  if (!force && url === current && source) return;
  if (source) source.close();
  source = null;
  current = url;
  if (!url) return;
  var opened = new EventSource(url);
  source = opened;
  opened.addEventListener("m", function (ev) {
    var m = JSON.parse(ev.data);
    forward({type: "m", topic: m.topic, kind: m.kind, data: m.data});
  });
  opened.addEventListener("error", function () {
    // EventSource retries by itself after a dropped connection; CLOSED means the server refused (401: logged out).
    if (opened.readyState === EventSource.CLOSED && source === opened) {
      source = null;
      current = "";
      forward({type: "end", data: {reason: "session"}});
    }
  });
  opened.addEventListener("end", function (ev) {
    var data = ev.data ? JSON.parse(ev.data) : {};
    opened.close();
    if (source === opened) { source = null; current = ""; }
    forward({type: "end", data: data});
  });
}

function later(force) {
  if (timer !== null) clearTimeout(timer);
  // Tabs opened together (a restored session) share one reconnect.
  timer = setTimeout(function () { connect(force); }, 25);
}

// Drop tabs that stopped pinging (crashed, killed) so their topics stop being watched.
setInterval(function () {
  var now = Date.now();
  if (tabs.some(function (tab) { return now - tab.seen >= TAB_SILENT_MS; })) later(false);
}, 20000);

self.addEventListener("connect", function (ev) {
  var tab = {port: ev.ports[0], topics: [], seen: Date.now()};
  tabs.push(tab);
  tab.port.addEventListener("message", function (msg) {
    var data = msg.data || {};
    tab.seen = Date.now();
    if (data.watch) {
      tab.topics = data.watch.slice(0, 64);
      if (data.lang) lang = data.lang;
      later(true);
    } else if (data.bye) {
      tabs = tabs.filter(function (other) { return other !== tab; });
      later(false);
    }
  });
  tab.port.start();
});
