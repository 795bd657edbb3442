// Times arrive in UTC (<time datetime=… data-local=…>); show them in the viewer's locale and time
// zone. The exact UTC instant stays in the title, shown on hover.
(function () {
  const styles = {date: {dateStyle: "medium"}, datetime: {dateStyle: "medium", timeStyle: "short"},
                  seconds: {dateStyle: "medium", timeStyle: "medium"}};
  function localise(root) {
    for (const el of (root || document).querySelectorAll("time[data-local]")) {
      const at = new Date(el.getAttribute("datetime"));
      if (!isNaN(at)) el.textContent = at.toLocaleString(undefined, styles[el.dataset.local] || styles.datetime);
    }
  }
  window.imprintLocaliseTimes = localise;
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => localise());
  else localise();
})();
