/* The new bulk job form: shows only the fields of the chosen target and audience source.
   Without JavaScript every field shows, and the server still checks what is needed. */
(function () {
  "use strict";
  function update(form) {
    form.querySelectorAll("[data-show-when]").forEach(function (block) {
      var rule = block.getAttribute("data-show-when").split("=");
      var checked = form.querySelector('input[name="' + rule[0] + '"]:checked');
      block.hidden = !checked || checked.value !== rule[1];
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-bulk-job-form]").forEach(function (form) {
      form.addEventListener("change", function () { update(form); });
      update(form);
    });
  });
})();
