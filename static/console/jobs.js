/* Live progress for background jobs: every element with data-progress-url polls its job's
   progress once a second and fills the elements marked data-job-field inside it. Rate and time
   left come from the change between polls. No inline script: this file is all there is. */
(function () {
  "use strict";
  var kit = window.consoleKit;
  var POLL_MS = 1000;
  var WINDOW_MS = 15000;

  function format(template, values) {
    return template.replace(/\{(\w+)\}/g, function (match, key) {
      return key in values ? String(values[key]) : match;
    });
  }

  function duration(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    var hours = Math.floor(seconds / 3600);
    var minutes = Math.floor((seconds % 3600) / 60);
    var rest = seconds % 60;
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return (hours ? hours + ":" + pad(minutes) : minutes) + ":" + pad(rest);
  }

  function watch(root) {
    var url = root.getAttribute("data-progress-url");
    var initialStatus = root.getAttribute("data-status");
    var reloadOnChange = root.hasAttribute("data-reload-on-change");
    var samples = [];
    var fields = {};
    root.querySelectorAll("[data-job-field]").forEach(function (element) {
      fields[element.getAttribute("data-job-field")] = element;
    });
    var numberFormat = new Intl.NumberFormat(document.documentElement.lang || undefined);

    function setText(name, text) {
      if (fields[name]) { fields[name].textContent = text; }
    }

    function show(data) {
      var now = Date.now();
      samples.push({ at: now, processed: data.processed });
      while (samples.length > 2 && now - samples[0].at > WINDOW_MS) { samples.shift(); }
      if (fields.progress) { fields.progress.value = data.percent; }
      setText("percent", data.percent + "%");
      setText("done", numberFormat.format(data.done));
      setText("failed", numberFormat.format(data.failed));
      setText("total", numberFormat.format(data.total));
      setText("sentence", data.sentence);
      setText("status_label", data.status_label);
      var first = samples[0];
      var seconds = (now - first.at) / 1000;
      var rate = seconds > 0 ? (data.processed - first.processed) / seconds : 0;
      if (data.final || data.status !== "running") {
        setText("rate", "—");
        setText("eta", "—");
      } else if (rate > 0) {
        setText("rate", format(root.getAttribute("data-rate-format") || "{rate}/s",
                               { rate: numberFormat.format(Math.round(rate * 10) / 10) }));
        setText("eta", format(root.getAttribute("data-eta-format") || "{time}",
                              { time: duration((data.total - data.processed) / rate) }));
      } else {
        setText("eta", root.getAttribute("data-eta-unknown") || "…");
      }
      root.setAttribute("data-current-status", data.status);
    }

    function poll() {
      kit.requestJSON(url)
        .then(function (answer) {
          if (!answer.ok) { throw new Error(String(answer.status)); }
          var data = answer.body;
          show(data);
          if (data.status !== initialStatus && reloadOnChange) {
            // The buttons that fit the new status come with the page.
            window.location.reload();
            return;
          }
          if (!data.final) { window.setTimeout(poll, POLL_MS); }
        })
        .catch(function () { window.setTimeout(poll, POLL_MS * 5); });
    }

    if (root.getAttribute("data-final") !== "true") { poll(); }
  }

  kit.each("[data-progress-url]", watch);
  kit.each("form[data-confirm]", function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });
})();
