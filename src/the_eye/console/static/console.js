// The Eye's console: the little behaviour pages share. No inline scripts anywhere (the
// console's Content-Security-Policy forbids them); htmx does partial updates.
(function () {
  "use strict";

  // A form with data-confirm asks before it is sent (deleting, revoking, erasing).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  // A secret's field selects all of itself when focused, for copying by hand where the
  // clipboard is out of reach (a page served over plain HTTP to another machine).
  document.addEventListener("focusin", function (event) {
    var input = event.target;
    if (input.matches && input.matches(".secret input")) input.select();
  });

  // A button with data-copy="<input id>" copies that input's value (a key shown once).
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-copy]");
    if (!button) return;
    var input = document.getElementById(button.getAttribute("data-copy"));
    if (!input) return;
    var done = function () { button.textContent = "Copied"; };
    input.select();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, function () {
        if (document.execCommand("copy")) done();
      });
    } else if (document.execCommand("copy")) {
      done();
    }
  });
})();
