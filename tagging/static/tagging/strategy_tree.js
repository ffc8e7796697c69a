/* The strategy tag tree: groups opened on demand, search answered by the server, and ordering
 * by drag-and-drop (SortableJS, vendored in static/vendor/) or ▲/▼.
 *
 * - A group's count is the button that opens it; tags not drawn with the page are fetched then.
 * - A search, another strategy or a refresh fetches the tree's body (strategies and groups)
 *   from the server and swaps it in: the page around it stays.
 * - After a move the list's new order (ids, top first) and the orders the page showed go to
 *   the server, which saves it in WeCom (one call when one item moved) and answers with the
 *   orders the console now has. Where there is no room between the new neighbours the server
 *   starts a job that gives the whole list new orders; the page then redraws the tree and
 *   follows the job's bar until it is over.
 *
 * No inline script: the page passes what this needs in data- attributes
 * (Content-Security-Policy). Editing needs Sortable.min.js on the page; reading does not. */
(function () {
  "use strict";

  var JOB_POLL_MS = 1000;

  function say(text, failed) {
    var status = document.getElementById("strategy-status");
    if (!status) return;
    status.textContent = text;
    status.classList.toggle("strategy-status-error", !!failed);
  }

  function groupsList() {
    return document.querySelector("ol.strategy-groups");
  }

  function fetchText(url) {
    return fetch(url, { credentials: "same-origin" }).then(function (response) {
      if (!response.ok) throw new Error(String(response.status));
      return response.text();
    });
  }

  // --- redrawing the tree's body -------------------------------------------------------------

  function openGroupIds() {
    return Array.prototype.map.call(
      document.querySelectorAll("li.strategy-group > .strategy-group-head > [aria-expanded=true]"),
      function (button) { return button.closest("li.strategy-group").getAttribute("data-id"); }
    );
  }

  /* Fetch the body for ``url`` (a tree URL) and swap it in. ``keepOpen``: the groups open now
   * stay open (a refresh); ``push``: the URL becomes the page's (a search, a strategy). */
  function loadBody(url, options) {
    var body = document.getElementById("strategy-body");
    var target = new URL(url, window.location.href);
    var partial = new URL(target.href);
    partial.searchParams.set("partial", "1");
    if (options.keepOpen) partial.searchParams.set("open", openGroupIds().join(","));
    if (body) body.setAttribute("aria-busy", "true");
    return fetchText(partial.href).then(function (html) {
      var current = document.getElementById("strategy-body");
      if (!current) return;
      current.insertAdjacentHTML("afterend", html);
      current.parentNode.removeChild(current);
      var fresh = document.getElementById("strategy-body");
      followSearchForm(fresh);
      activate(fresh);
      if (options.push) window.history.pushState({ strategyTree: true }, "", target.href);
      document.documentElement.setAttribute("data-strategy-tree-drawn", String(Date.now()));
    }).catch(function () {
      if (body) body.removeAttribute("aria-busy");
      var form = document.querySelector("form.strategy-search");
      say(form ? form.getAttribute("data-error") : "", true);
    });
  }

  function refresh() {
    return loadBody(window.location.href, { keepOpen: true });
  }

  /* The search form names the strategy shown and the search answered. */
  function followSearchForm(body) {
    var form = document.querySelector("form.strategy-search");
    if (!form || !body) return;
    var strategy = form.querySelector("input[name=strategy]");
    if (strategy && body.getAttribute("data-strategy")) {
      strategy.value = body.getAttribute("data-strategy");
    }
    var query = form.querySelector("input[name=q]");
    if (query && document.activeElement !== query) query.value = body.getAttribute("data-query");
  }

  function search(form) {
    var params = new URLSearchParams(new FormData(form));
    if (!params.get("q")) params.delete("q");
    var url = new URL(window.location.href);
    url.search = params.toString();
    url.hash = "";
    loadBody(url.href, { push: true });
  }

  // --- opening a group -----------------------------------------------------------------------

  function toggle(button) {
    var group = button.closest("li.strategy-group");
    var open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(open));
    var body = group.querySelector(":scope > .strategy-group-body");
    if (body) {
      body.hidden = !open;
      return;
    }
    if (!open || group.hasAttribute("aria-busy")) return;
    var list = groupsList();
    var url = list.getAttribute("data-tags-url")
      .replace(/\/0\/tags\/$/, "/" + group.getAttribute("data-id") + "/tags/");
    // A group shown for its matching tags opens on those; one that matches itself, on all.
    if (group.hasAttribute("data-matches")) {
      url += "?q=" + encodeURIComponent(list.getAttribute("data-query"));
    }
    group.setAttribute("aria-busy", "true");
    fetchText(url).then(function (html) {
      group.removeAttribute("aria-busy");
      group.insertAdjacentHTML("beforeend", html);
      var fresh = group.querySelector(":scope > .strategy-group-body");
      fresh.hidden = button.getAttribute("aria-expanded") !== "true";
      activate(fresh);
    }).catch(function () {
      group.removeAttribute("aria-busy");
      button.setAttribute("aria-expanded", "false");
      say(document.querySelector("form.strategy-search").getAttribute("data-error"), true);
    });
  }

  // --- moving --------------------------------------------------------------------------------

  function idsOf(list) {
    return Array.prototype.map.call(list.children, function (item) {
      return item.getAttribute("data-id");
    }).filter(Boolean);
  }

  function orderBadge(item) {
    return item.querySelector(":scope > .strategy-order, :scope > .strategy-group-head > .strategy-order");
  }

  /* The orders this page shows ("pk:order,…"): the server sends nothing to WeCom if the
   * console's differ (someone moved something since), and answers with the true order. */
  function shownOrders(list) {
    return Array.prototype.map.call(list.children, function (item) {
      var id = item.getAttribute("data-id");
      var badge = orderBadge(item);
      return id && badge ? id + ":" + badge.textContent.trim() : "";
    }).filter(Boolean).join(",");
  }

  function showOrders(list, orders) {
    Array.prototype.forEach.call(list.children, function (item) {
      var id = item.getAttribute("data-id");
      var badge = orderBadge(item);
      var order = orders[id] === undefined ? null : String(orders[id]);
      if (badge && order !== null && badge.textContent !== order) badge.textContent = order;
    });
  }

  /* Put the list in ``order``, moving only the items out of place: a list of 500 groups
   * usually already shows the order the server confirms. */
  function restore(list, order) {
    var byId = {};
    Array.prototype.forEach.call(list.children, function (item) {
      byId[item.getAttribute("data-id")] = item;
    });
    var next = list.firstElementChild;
    order.forEach(function (id) {
      var item = byId[id];
      if (!item) return;
      if (item === next) {
        next = next.nextElementSibling;
      } else {
        list.insertBefore(item, next);
      }
    });
  }

  function send(list, before) {
    var moveUrl = groupsList().getAttribute("data-move-url");
    var body = new URLSearchParams();
    body.set("kind", list.getAttribute("data-kind"));
    body.set("parent", list.getAttribute("data-parent"));
    body.set("ids", idsOf(list).join(","));
    body.set("shown", shownOrders(list));
    list.setAttribute("aria-busy", "true");
    window.consoleKit.requestJSON(moveUrl, { method: "POST", body: body }).then(function (reply) {
      var answer = reply.body;
      list.removeAttribute("aria-busy");
      say(answer.message, !answer.ok);
      if (answer.order) {
        // Show exactly the console's order, whatever happened: larger first, as the server
        // answers it (after a refusal or someone else's move too).
        restore(list, answer.order.map(String));
        showOrders(list, answer.orders);
      } else {
        restore(list, before);
      }
      list.setAttribute("data-saved", String(Date.now()));
      // A re-spacing started: the tree shows the list's orders waiting, and the job's bar.
      if (answer.job) refresh();
    }).catch(function () {
      list.removeAttribute("aria-busy");
      restore(list, before);
      say(groupsList().getAttribute("data-error"), true);
    });
  }

  function step(button) {
    var item = button.closest("li[data-id]");
    var list = item.parentElement;
    var before = idsOf(list);
    if (button.getAttribute("data-step") === "up") {
      if (!item.previousElementSibling) return;
      list.insertBefore(item, item.previousElementSibling);
    } else {
      if (!item.nextElementSibling) return;
      list.insertBefore(item.nextElementSibling, item);
    }
    button.focus();
    send(list, before);
  }

  function sortable(list) {
    if (typeof Sortable === "undefined" || list.hasAttribute("data-sortable-ready")) return;
    list.setAttribute("data-sortable-ready", "1");
    var before = null;
    Sortable.create(list, {
      handle: ".strategy-handle",
      draggable: "li[data-id]",
      animation: 150,
      ghostClass: "strategy-ghost",
      forceFallback: true,
      onStart: function () { before = idsOf(list); },
      onEnd: function (event) {
        if (event.oldIndex === event.newIndex) return;
        send(list, before);
      }
    });
  }

  // --- following a re-spacing job ------------------------------------------------------------

  function followJob(bar) {
    var url = bar.getAttribute("data-job-url");
    function poll() {
      if (!document.body.contains(bar)) return; // redrawn meanwhile: its successor follows
      window.consoleKit.requestJSON(url)
        .then(function (reply) {
          // A job this page may not follow, or one that is gone: asking again will not help.
          if (reply.status >= 400 && reply.status < 500) return;
          if (!reply.ok) throw new Error(String(reply.status));
          var job = reply.body;
          var progress = bar.querySelector("progress");
          if (progress) progress.value = job.percent;
          bar.querySelector("[data-job-count]").textContent = job.processed + " / " + job.total;
          bar.querySelector("[data-job-sentence]").textContent = job.sentence;
          if (job.final) {
            say(job.sentence, job.status !== "done");
            refresh();
            return;
          }
          window.setTimeout(poll, JOB_POLL_MS);
        })
        .catch(function () { window.setTimeout(poll, JOB_POLL_MS * 5); });
    }
    window.setTimeout(poll, JOB_POLL_MS);
  }

  // --- wiring --------------------------------------------------------------------------------

  function activate(root) {
    root.querySelectorAll("[data-sortable]").forEach(sortable);
    root.querySelectorAll(".strategy-respacing[data-job-url]").forEach(followJob);
  }

  function onClick(event) {
    var target = event.target.closest ? event.target : null;
    if (!target) return;
    var button = target.closest("button[data-step]");
    if (button) {
      step(button);
      return;
    }
    var toggler = target.closest("button.strategy-toggle");
    if (toggler) {
      toggle(toggler);
      return;
    }
    var link = target.closest("a[data-tree-link]");
    if (link && !event.ctrlKey && !event.metaKey && !event.shiftKey && event.button === 0) {
      event.preventDefault();
      loadBody(link.href, { push: true });
    }
  }

  function init() {
    document.addEventListener("click", onClick);
    var form = document.querySelector("form.strategy-search");
    if (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        search(form);
      });
    }
    window.addEventListener("popstate", function () {
      loadBody(window.location.href, {});
    });
    var body = document.getElementById("strategy-body");
    if (body) activate(body);
    document.documentElement.setAttribute("data-strategy-tree-ready", "1");
  }

  window.consoleKit.ready(init);
})();
