// Live events: keep `#live-after` at the newest row shown (so each poll asks only for newer
// rows), drop rows past the page's bound, and pause the polling: Pause is a toggle button
// (aria-pressed), and htmx's request is cancelled while it is pressed.
(function () {
  "use strict";

  function paused() {
    var button = document.getElementById("live-pause");
    return button !== null && button.getAttribute("aria-pressed") === "true";
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    if (event.target.id === "live-poller" && paused()) event.preventDefault();
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var rows = document.getElementById("live-rows");
    if (event.target !== rows) return;
    var newest = rows.querySelector("tr[data-id]");
    if (newest) document.getElementById("live-after").value = newest.getAttribute("data-id");
    var empty = document.querySelector(".live-empty");
    if (empty && newest) empty.remove();
    var kept = parseInt(document.getElementById("live-poller").getAttribute("data-kept-rows"), 10);
    var all = rows.querySelectorAll("tr");
    for (var i = all.length - 1; i >= kept; i--) all[i].remove();
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("#live-pause");
    if (!button) return;
    var pause = button.getAttribute("aria-pressed") !== "true";
    button.setAttribute("aria-pressed", pause ? "true" : "false");
    document.getElementById("live-status").textContent = pause
      ? "Paused: new events are not fetched. Press Pause again to resume."
      : "Following new events again.";
  });
})();
