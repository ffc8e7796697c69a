/* The new bulk job form: shows only the fields of the chosen target and audience source, says
   before sending that a file is over the size limit (in the server's own sentence), and shows
   that the list is being read while the server reads it. Without JavaScript every field shows,
   and the server still checks all of it. */
(function () {
  "use strict";
  function update(form) {
    form.querySelectorAll("[data-show-when]").forEach(function (block) {
      var rule = block.getAttribute("data-show-when").split("=");
      var checked = form.querySelector('input[name="' + rule[0] + '"]:checked');
      block.hidden = !checked || checked.value !== rule[1];
      // A file chosen, then another source: the file is not sent (nor refused for its size).
      block.querySelectorAll('input[type="file"]').forEach(function (input) {
        input.disabled = block.hidden;
      });
    });
  }
  function megabytes(size) {
    return (Math.round(size / 1024 / 1024 * 10) / 10).toString();
  }
  // The chosen file when it is over the limit and the file source is chosen, else null.
  function fileTooLarge(form) {
    var source = form.querySelector('input[name="source"]:checked');
    var input = form.querySelector('input[type="file"]');
    var limit = Number(form.getAttribute("data-max-bytes"));
    if (!input || !input.files.length || !limit || (source && source.value !== "file")) {
      return null;
    }
    return input.files[0].size > limit ? input.files[0] : null;
  }
  function showRefusal(form) {
    var note = form.querySelector("[data-bulk-file-refusal]");
    var file = fileTooLarge(form);
    if (!note) { return false; }
    if (file) {
      note.textContent = form.getAttribute("data-too-large")
        .replace("%(size)s", megabytes(file.size))
        .replace("%(limit)s", megabytes(Number(form.getAttribute("data-max-bytes"))));
    }
    note.hidden = !file;
    return Boolean(file);
  }
  window.consoleKit.each("[data-bulk-job-form]", function (form) {
    form.addEventListener("change", function () {
      update(form);
      showRefusal(form);
    });
    form.addEventListener("submit", function (event) {
      if (showRefusal(form)) {
        event.preventDefault();
        return;
      }
      var reading = form.querySelector("[data-bulk-reading]");
      var button = form.querySelector("[data-bulk-preview]");
      if (reading) { reading.hidden = false; }
      // After the submission has started: a disabled button would not be submitted.
      window.setTimeout(function () { if (button) { button.disabled = true; } }, 0);
    });
    update(form);
    showRefusal(form);
  });
})();
