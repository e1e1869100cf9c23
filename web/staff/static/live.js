// The staff area's live parts (web/staff/inbox.py): the inbox count in the navigation, the
// inbox table, and an open conversation's new messages and holder, polled every few seconds.
// Text is always set with textContent, never parsed as HTML: patients' messages are shown as typed.
(function () {
  "use strict";
  var POLL_MS = 3000;

  function getJson(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        // Signed out (redirect to the sign-in page) or refused: stop quietly, the page says why on reload.
        if (!response.ok || response.redirected) { throw new Error("poll " + response.status); }
        return response.json();
      });
  }

  function cell(row, text, href) {
    var td = document.createElement("td");
    if (href) {
      var link = document.createElement("a");
      link.href = href;
      link.textContent = text;
      td.appendChild(link);
    } else {
      td.textContent = text;
    }
    row.appendChild(td);
  }

  function renderInbox(data) {
    var count = document.getElementById("inbox-count");
    if (count) { count.textContent = String(data.waiting); }
    var body = document.getElementById("inbox-rows");
    if (!body) { return; }
    body.textContent = "";
    data.conversations.forEach(function (item) {
      var row = document.createElement("tr");
      row.setAttribute("data-id", String(item.id));
      cell(row, "Conversation #" + item.id, item.url);
      cell(row, item.reason);
      cell(row, item.channel);
      cell(row, item.waiting_minutes + " min");
      cell(row, item.reference || "");
      cell(row, item.held_by || "Waiting");
      body.appendChild(row);
    });
    var empty = document.getElementById("inbox-empty");
    if (empty) { empty.hidden = data.conversations.length > 0; }
  }

  function appendMessage(list, message) {
    var item = document.createElement("li");
    item.className = "message message-" + message.speaker + (message.warning_sign ? " message-warning" : "");
    item.setAttribute("data-id", String(message.id));
    var speaker = document.createElement("span");
    speaker.className = "speaker";
    speaker.textContent = message.speaker === "patient" ? "Patient"
      : message.speaker === "staff" ? message.staff + " (staff)" : "Assistant";
    item.appendChild(speaker);
    if (message.warning_sign) {
      var flag = document.createElement("strong");
      flag.className = "warning-flag";
      flag.textContent = "Warning sign reported";
      item.appendChild(flag);
    }
    var text = document.createElement("p");
    text.textContent = message.text;
    item.appendChild(text);
    list.appendChild(item);
  }

  function pollConversation(list, status) {
    var url = list.getAttribute("data-poll") + "?after=" + encodeURIComponent(list.getAttribute("data-after"));
    return getJson(url).then(function (data) {
      data.messages.forEach(function (message) {
        if (!list.querySelector('[data-id="' + message.id + '"]')) { appendMessage(list, message); }
        list.setAttribute("data-after", String(message.id));
      });
      if (status) {
        var holder = status.getAttribute("data-status") || "";
        var now = data.status + ":" + (data.held_by || "") + ":" + data.holds_it;
        if (holder && holder !== now) { window.location.reload(); return; }
        status.setAttribute("data-status", now);
      }
    });
  }

  function start() {
    var nav = document.querySelector("[data-inbox-poll]");
    var list = document.getElementById("live-transcript");
    var status = document.getElementById("hold-status");
    function tick() {
      var work = [];
      if (nav) { work.push(getJson(nav.getAttribute("data-inbox-poll")).then(renderInbox)); }
      if (list) { work.push(pollConversation(list, status)); }
      Promise.all(work).then(function () { window.setTimeout(tick, POLL_MS); },
        function () { window.setTimeout(tick, POLL_MS * 5); });
    }
    tick();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
