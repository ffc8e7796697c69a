/* The helpers every page script of the console needs, in one place: window.consoleKit.
 *
 * Load it before the page's own script (<script src="{% static 'console/console.js' %}">,
 * or first in a form's or admin's Media). No inline script, no innerHTML: text reaches the page
 * through textContent only.
 */
(function () {
  "use strict";
  if (window.consoleKit) return;

  // Runs `start` once the document is parsed (at once if it already is).
  function ready(start) {
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
    else start();
  }

  // Once the document is parsed, calls `start(element)` for each element matching `selector`,
  // once per element even when a script is loaded twice.
  var started = {};
  function each(selector, start) {
    ready(function () {
      var seen = started[selector] || (started[selector] = new WeakSet());
      document.querySelectorAll(selector).forEach(function (element) {
        if (seen.has(element)) return;
        seen.add(element);
        start(element);
      });
    });
  }

  // A new element with a class and a text (both optional); never markup.
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  // The translated sentences a template rendered for the script:
  // <template data-tpl="name"><span data-string="key">…</span></template> → {key: "…"}.
  function strings(scope, name) {
    var result = {};
    var tpl = scope.querySelector('template[data-tpl="' + name + '"]');
    if (!tpl) return result;
    tpl.content.querySelectorAll("[data-string]").forEach(function (node) {
      result[node.getAttribute("data-string")] = node.textContent;
    });
    return result;
  }

  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  /* A request to the console that answers JSON: same-origin cookies, and the page's CSRF token
   * on anything but a GET. Resolves to {ok, status, body} whatever the status (the console
   * explains refusals in the body); rejects when the connection fails or the answer is not
   * JSON. `body` is FormData, URLSearchParams or nothing. */
  function requestJSON(url, options) {
    var method = (options && options.method) || "GET";
    var headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
    return fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: headers,
      body: options && options.body,
    }).then(function (response) {
      return response.json().then(function (body) {
        return { ok: response.ok, status: response.status, body: body };
      });
    });
  }

  window.consoleKit = {
    ready: ready,
    each: each,
    el: el,
    strings: strings,
    requestJSON: requestJSON,
  };
})();
