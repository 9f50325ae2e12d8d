/* s3av portal: the little behaviour that plain HTML lacks. No inline script: the CSP forbids it.
   - [data-copy="ELEMENT-ID"] on a button copies that element's text (API key secrets, policy statements).
   - <form data-confirm="Question?"> asks before it is sent (prefer the confirmation page pattern,
     templates/components/confirm.html, for anything that cannot be undone).
   - htmx requests carry the CSRF token (from the <meta name="csrf-token"> of base.html). */
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-copy]") : null;
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) return;
    navigator.clipboard.writeText(source.textContent.trim()).then(function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 2000);
    });
  });

  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  // On a phone the nav is a strip that scrolls sideways: keep the current page's link in view.
  document.addEventListener("DOMContentLoaded", function () {
    var current = document.querySelector(".mainnav [aria-current='page']");
    if (current && current.scrollIntoView) current.scrollIntoView({ block: "nearest", inline: "nearest" });
  });

  document.addEventListener("htmx:configRequest", function (event) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) event.detail.headers["X-CSRFToken"] = meta.getAttribute("content");
  });
})();
