/* The tag picker of the customer-tagging job form: search the chosen app's tags by name (the
   admin's ".../customeraudience/tags/?app=…&q=…"), pick them, see them as chips with their
   names. The ids text box stays the field's value: a pick adds its id there, a chip's "take
   out" removes it, and ids pasted there become chips too (named when the console knows them).
   Without this script the box alone shows and the server takes the ids as typed. */
(function () {
  "use strict";
  var kit = window.consoleKit;
  // As the form's split_ids: spaces, commas, semicolons (and their Chinese forms), new lines.
  var SEPARATORS = /[\s,;，；、]+/;
  // A name per id, shared by both pickers of the page, per app: {"<app>": {"et…": label}}.
  var known = {};

  function splitIds(text) {
    var seen = {};
    return text.split(SEPARATORS).filter(function (id) {
      if (!id || seen[id]) return false;
      seen[id] = true;
      return true;
    });
  }

  function start(picker) {
    var form = picker.closest("form");
    var input = picker.querySelector("input[name]:not([data-picker-search])");
    var search = picker.querySelector("[data-picker-search]");
    var results = picker.querySelector("[data-picker-results]");
    var status = picker.querySelector("[data-picker-status]");
    var chips = picker.querySelector("[data-picker-chips]");
    var text = kit.strings(picker, "tag-picker");
    var url = picker.getAttribute("data-search-url");
    var appField = form && form.querySelector('[name="' + picker.getAttribute("data-app-field") + '"]');
    var timer = null;
    var asked = 0; // the latest search: an older answer arriving late is dropped

    picker.querySelectorAll("[data-picker-when-script]").forEach(function (node) {
      node.hidden = false;
    });

    function app() { return appField ? appField.value : ""; }
    function names() { return known[app()] || (known[app()] = {}); }
    function ids() { return splitIds(input.value); }

    function say(message) {
      status.textContent = message || "";
      status.hidden = !message;
    }

    function setIds(list) {
      input.value = list.join(" ");
      drawChips();
      markPicked();
    }

    function drawChips() {
      chips.replaceChildren();
      ids().forEach(function (id) {
        var label = names()[id];
        var chip = kit.el("li", "tag-picker-chip" + (label === null ? " unknown" : ""));
        chip.setAttribute("data-picked", id);
        if (label) {
          chip.appendChild(kit.el("span", "", label.name));
          chip.appendChild(kit.el("small", "", label.place));
        } else {
          chip.appendChild(kit.el("code", "", id));
          if (label === null) chip.title = text.unknown;
        }
        var remove = kit.el("button", "", "×");
        remove.type = "button";
        remove.setAttribute("aria-label", text.remove + " " + (label ? label.name : id));
        remove.addEventListener("click", function () {
          setIds(ids().filter(function (other) { return other !== id; }));
          search.focus();
        });
        chip.appendChild(remove);
        chips.appendChild(chip);
      });
    }

    function markPicked() {
      var picked = ids();
      results.querySelectorAll("[data-tag-id]").forEach(function (option) {
        var on = picked.indexOf(option.getAttribute("data-tag-id")) !== -1;
        option.setAttribute("aria-selected", on ? "true" : "false");
      });
    }

    // Names of ids typed or pasted into the box (or kept after a refused form).
    function nameIds() {
      var missing = ids().filter(function (id) { return !(id in names()); });
      if (!missing.length || !app()) { drawChips(); return; }
      var forApp = app();
      var query = new URLSearchParams({ app: forApp, ids: missing.join(" ") });
      kit.requestJSON(url + "?" + query.toString()).then(function (answer) {
        if (!answer.ok) { drawChips(); return; } // a malformed id: said when the form is sent
        var table = known[forApp] || (known[forApp] = {});
        answer.body.results.forEach(function (label) { table[label.id] = label; });
        answer.body.unknown.forEach(function (id) { table[id] = null; });
        drawChips();
      }, function () { drawChips(); });
    }

    function drawResults(found, more) {
      results.replaceChildren();
      var place = null;
      found.forEach(function (label) {
        names()[label.id] = label;
        if (label.place !== place) {
          place = label.place;
          results.appendChild(kit.el("h3", "", place));
        }
        var option = kit.el("button", "", label.name);
        option.type = "button";
        option.setAttribute("role", "option");
        option.setAttribute("data-tag-id", label.id);
        option.title = label.place + " / " + label.name;
        option.addEventListener("click", function () {
          var list = ids();
          var at = list.indexOf(label.id);
          if (at === -1) list.push(label.id);
          else list.splice(at, 1);
          setIds(list);
        });
        results.appendChild(option);
      });
      results.hidden = !found.length;
      markPicked();
      say(!found.length ? text.none : more ? text.more : "");
    }

    function ask() {
      if (!app()) { results.hidden = true; say(text.app); return; }
      var mine = ++asked;
      var query = new URLSearchParams({ app: app(), q: search.value.trim() });
      kit.requestJSON(url + "?" + query.toString()).then(function (answer) {
        if (mine !== asked) return;
        if (!answer.ok) { results.hidden = true; say(answer.body.error || text.failed); return; }
        drawResults(answer.body.results, answer.body.more);
      }, function () {
        if (mine === asked) say(text.failed);
      });
    }

    search.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(ask, 200); // one request per pause in typing
    });
    search.addEventListener("focus", function () { if (results.hidden) ask(); });
    search.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        // Enter picks the first match rather than sending the form half filled.
        event.preventDefault();
        var first = results.querySelector("[data-tag-id]");
        if (first && !results.hidden) first.click();
      } else if (event.key === "ArrowDown") {
        var option = results.querySelector("[data-tag-id]");
        if (option) { event.preventDefault(); option.focus(); }
      } else if (event.key === "Escape") {
        results.hidden = true;
      }
    });
    results.addEventListener("keydown", function (event) {
      var options = Array.prototype.slice.call(results.querySelectorAll("[data-tag-id]"));
      var at = options.indexOf(document.activeElement);
      if (event.key === "ArrowDown" && at < options.length - 1) options[at + 1].focus();
      else if (event.key === "ArrowUp") (at > 0 ? options[at - 1] : search).focus();
      else if (event.key === "Escape") { results.hidden = true; search.focus(); }
      else return;
      event.preventDefault();
    });
    // A click elsewhere on the page closes the list (the chips keep what was picked).
    document.addEventListener("click", function (event) {
      if (!picker.contains(event.target)) results.hidden = true;
    });
    var naming = null;
    input.addEventListener("input", function () {
      drawChips(); // at once by id; the names follow a pause in typing
      window.clearTimeout(naming);
      naming = window.setTimeout(nameIds, 300);
    });
    if (appField) {
      appField.addEventListener("change", function () {
        results.replaceChildren();
        results.hidden = true;
        say("");
        nameIds();
      });
    }
    nameIds();
  }

  kit.each("[data-tag-picker]", start);
})();
