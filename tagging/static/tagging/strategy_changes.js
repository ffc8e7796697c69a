/* The open tree page asks every few seconds whether a WeCom callback has been applied since it
 * was drawn; if so it says so and offers to refresh. No inline script (Content-Security-Policy):
 * the URL and the starting point come in data- attributes. */
(function () {
  "use strict";
  function start() {
    var notice = document.getElementById("wecom-changed");
    if (!notice || !notice.getAttribute("data-changes-url")) return;
    var url = notice.getAttribute("data-changes-url");
    var since = notice.getAttribute("data-since") || "0";
    var interval = parseInt(notice.getAttribute("data-interval-ms"), 10) || 5000;
    var refresh = document.getElementById("wecom-changed-refresh");
    if (refresh) {
      refresh.addEventListener("click", function (event) {
        event.preventDefault();
        window.location.reload();
      });
    }
    function poll() {
      window.consoleKit.requestJSON(url + "?since=" + encodeURIComponent(since))
        .then(function (answer) {
          if (answer.ok && answer.body.changed) {
            notice.hidden = false;
            return;
          }
          window.setTimeout(poll, interval);
        })
        .catch(function () { window.setTimeout(poll, interval); });
    }
    window.setTimeout(poll, interval);
  }

  window.consoleKit.ready(start);
})();
