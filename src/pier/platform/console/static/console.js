// pier console: the little JavaScript it has. Pages work without it; this only refreshes
// the charts every 15 s (the server renders them as SVG) while the tab is visible.
"use strict";
(function () {
  const REFRESH_MS = 15000;
  function refresh(box) {
    if (document.hidden) return;
    fetch(box.dataset.refresh, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.redirected || !r.ok) return null; // signed out: leave the page as it is
        return r.text();
      })
      .then(function (html) {
        if (html !== null) box.innerHTML = html;
      })
      .catch(function () {});
  }
  document.querySelectorAll("[data-refresh]").forEach(function (box) {
    setInterval(function () { refresh(box); }, REFRESH_MS);
  });
})();
