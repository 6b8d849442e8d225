// modelreg serve: copy buttons. Every <button class="copy" data-copy="…"> copies its data-copy text.
// The only script of the app (served from /static, no inline script; the page works without it).
"use strict";
document.addEventListener("click", function (event) {
  var button = event.target.closest ? event.target.closest("button.copy") : null;
  if (!button) { return; }
  var text = button.getAttribute("data-copy") || "";
  function done(label) {
    button.textContent = label;
    setTimeout(function () { button.textContent = "Copy"; }, 1500);
  }
  if (navigator.clipboard && navigator.clipboard.writeText) {
    navigator.clipboard.writeText(text).then(function () { done("Copied"); }, function () { done("Copy failed"); });
  } else {
    done("Copy failed");
  }
});
