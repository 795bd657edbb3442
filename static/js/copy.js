// Copy buttons: <button data-copy="ID"> copies the text (or the value) of the element with that id;
// <button data-copy-text="TEXT"> copies TEXT itself (an id or a hash shown in a table).
// navigator.clipboard needs a secure context (https or localhost); elsewhere a selected, off-screen
// textarea and execCommand still copy.
(function () {
  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.left = "-9999px";
    document.body.appendChild(area);
    area.select();
    var copied = false;
    try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
    document.body.removeChild(area);
    return copied ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return fallbackCopy(text); });
    }
    return fallbackCopy(text);
  }

  function announce(button, words) {
    var label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    button.textContent = words;
    setTimeout(function () { button.textContent = label; }, 1600);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy], button[data-copy-text]");
    if (!button) return;
    event.preventDefault();
    var text = button.dataset.copyText;
    if (text === undefined) {
      var source = document.getElementById(button.dataset.copy);
      if (!source) return;
      text = source.tagName === "TEXTAREA" || source.tagName === "INPUT" ? source.value : source.textContent;
    }
    copyText(text).then(function () { announce(button, "Copied"); },
                        function () { announce(button, "Select and copy (Ctrl+C)"); });
  });
})();
