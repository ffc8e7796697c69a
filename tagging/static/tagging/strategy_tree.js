/* Drag-and-drop ordering on the strategy tag tree (SortableJS, vendored in static/vendor/).
 * After a drop the list's new order (ids, top first) goes to the server, which saves it in
 * WeCom (one call when one item moved) and answers with the orders WeCom now has. No inline
 * script: the page passes what this needs in data- attributes (Content-Security-Policy). */
(function () {
  "use strict";

  function say(text, failed) {
    var status = document.getElementById("strategy-status");
    if (!status) return;
    status.textContent = text;
    status.classList.toggle("strategy-status-error", !!failed);
  }

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
      if (badge && orders[id] !== undefined) badge.textContent = orders[id];
    });
  }

  function restore(list, order) {
    var byId = {};
    Array.prototype.forEach.call(list.children, function (item) {
      byId[item.getAttribute("data-id")] = item;
    });
    order.forEach(function (id) {
      if (byId[id]) list.appendChild(byId[id]);
    });
  }

  function send(list, before) {
    var moveUrl = document.querySelector("[data-move-url]").getAttribute("data-move-url");
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
    }).catch(function () {
      list.removeAttribute("aria-busy");
      restore(list, before);
      say(document.querySelector("[data-move-url]").getAttribute("data-error"), true);
    });
  }

  function init() {
    if (typeof Sortable === "undefined") return;
    document.querySelectorAll("[data-sortable]").forEach(function (list) {
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
    });
    // The same move without a mouse: ▲/▼ beside each item.
    document.addEventListener("click", function (event) {
      var button = event.target.closest ? event.target.closest("button[data-step]") : null;
      if (!button) return;
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
    });
    document.documentElement.setAttribute("data-strategy-tree-ready", "1");
  }

  window.consoleKit.ready(init);
})();
