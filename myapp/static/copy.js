// Copy buttons: <button type="button" class="copy" data-copy="TEXT" hidden>.
// They are rendered hidden and shown here, so a page without JavaScript, or
// without the Clipboard API (it needs HTTPS or localhost), shows no dead button.
// Loaded as a file: the CSP allows no inline script or handler.
"use strict";

(() => {
  if (!window.isSecureContext || !navigator.clipboard) {
    return;
  }
  const buttons = document.querySelectorAll("button.copy[data-copy]");
  if (!buttons.length) {
    return;
  }
  // Screen readers hear the outcome; the button's own label stays as it is.
  const status = document.createElement("span");
  status.className = "visually-hidden";
  status.setAttribute("role", "status");
  document.body.append(status);

  const show = (button, text) => {
    button.textContent = text;
    status.textContent = text;
    clearTimeout(button.copyTimer);
    button.copyTimer = setTimeout(() => {
      button.textContent = "Copy";
      status.textContent = "";
    }, 2000);
  };

  for (const button of buttons) {
    button.hidden = false;
    button.addEventListener("click", () => {
      navigator.clipboard.writeText(button.dataset.copy).then(
        () => show(button, "Copied"),
        () => show(button, "Copy failed"),
      );
    });
  }
})();
