// The header's language menu submits its form on change; without script the "Switch" button
// in <noscript> does it. A file, not an onchange attribute: the Content-Security-Policy refuses
// inline handlers.
"use strict";
document.addEventListener("change", (event) => {
  const select = event.target;
  if (select instanceof HTMLSelectElement && select.id === "console-language-select") {
    select.form.submit();
  }
});
