/*
 * The auto-reply answer editor and its phone-style preview.
 *
 * The answer lives in one hidden input as the editor's JSON (chatbot/answers.py documents it);
 * this script builds structured fields for it from the <template>s the server rendered (every
 * label translated there) and re-draws the preview on each keystroke.
 *
 * Safety: user data only ever reaches the page through textContent, input values and
 * attributes set with setAttribute/properties; never innerHTML. Images get a src only when it is
 * an http(s) address; links in the preview are not links at all (nothing to click, nothing to
 * run). No inline script: the page may run under a strict Content-Security-Policy.
 */
(function () {
  "use strict";

  var kit = window.consoleKit;
  var el = kit.el;
  var WEB_URL = /^https?:\/\//i;
  var SINGLE_KINDS = ["text", "news", "image", "miniprogrampage"];

  function blank(kind) {
    switch (kind) {
      case "text":
        return { type: "text", segments: [{ kind: "text", text: "" }] };
      case "news":
        return { type: "news", articles: [blankArticle()] };
      case "image":
        return { type: "image", media_id: "", url: "" };
      case "miniprogrampage":
        return { type: "miniprogrampage", title: "", appid: "", pagepath: "", thumb_media_id: "", thumb_url: "" };
      case "multimsg":
        return { type: "multimsg", items: [blank("text")] };
    }
    return blank("text");
  }

  function blankArticle() {
    return { title: "", description: "", url: "", picurl: "", type: "h5" };
  }

  // Moves list[from] to the place `to`; false when `to` is outside the list or where it was.
  function move(list, from, to) {
    if (to < 0 || to >= list.length || to === from) return false;
    list.splice(to, 0, list.splice(from, 1)[0]);
    return true;
  }

  // ---- preview ------------------------------------------------------------------------------

  function safeImage(url, className, alt) {
    var img = el("img", className);
    img.alt = alt || "";
    if (typeof url === "string" && WEB_URL.test(url)) {
      img.src = url;
      img.referrerPolicy = "no-referrer";
    }
    return img;
  }

  function previewText(answer, s) {
    var bubble = el("div", "pv-bubble pv-text");
    var segments = answer.segments || [];
    var any = false;
    segments.forEach(function (segment) {
      if (segment.kind === "menu" || segment.kind === "link") {
        var link = el("span", "pv-link pv-link-" + segment.kind, segment.label || "…");
        link.title = segment.kind === "link" ? segment.url || "" : segment.question || segment.label || "";
        bubble.appendChild(link);
        any = true;
      } else if (segment.text) {
        bubble.appendChild(document.createTextNode(segment.text));
        any = any || segment.text.trim() !== "";
      }
    });
    if (!any) bubble.appendChild(el("span", "pv-empty", s.empty));
    return bubble;
  }

  function previewNews(answer, s) {
    var card = el("div", "pv-bubble pv-news");
    (answer.articles || []).forEach(function (article, index) {
      var row = el("div", index === 0 ? "pv-article pv-article-lead" : "pv-article");
      row.appendChild(safeImage(article.picurl, "pv-article-pic", ""));
      var words = el("div", "pv-article-words");
      words.appendChild(el("div", "pv-article-title", article.title || s.empty));
      if (article.description && index === 0) {
        words.appendChild(el("div", "pv-article-desc", article.description));
      }
      row.appendChild(words);
      card.appendChild(row);
    });
    return card;
  }

  function previewImage(answer, s) {
    var bubble = el("div", "pv-bubble pv-image");
    if (answer.url && WEB_URL.test(answer.url)) {
      bubble.appendChild(safeImage(answer.url, "pv-image-pic", s.image));
    } else {
      bubble.appendChild(el("div", "pv-image-placeholder", s.image + " " + (answer.media_id || "")));
    }
    return bubble;
  }

  function previewMiniProgram(answer, s) {
    var card = el("div", "pv-bubble pv-mini");
    card.appendChild(el("div", "pv-mini-title", answer.title || s.empty));
    card.appendChild(safeImage(answer.thumb_url, "pv-mini-pic", ""));
    card.appendChild(el("div", "pv-mini-foot", s.miniprogram));
    return card;
  }

  function previewSingle(answer, s) {
    switch (answer && answer.type) {
      case "text":
        return previewText(answer, s);
      case "news":
        return previewNews(answer, s);
      case "image":
        return previewImage(answer, s);
      case "miniprogrampage":
        return previewMiniProgram(answer, s);
    }
    return el("div", "pv-bubble", s.empty);
  }

  function renderPreview(screen, answer, title, s) {
    var nodes = [];
    var asked = el("div", "pv-row pv-row-user");
    asked.appendChild(el("div", "pv-bubble pv-user", title || "…"));
    asked.appendChild(el("div", "pv-avatar pv-avatar-user", (s.you || "C").slice(0, 1)));
    nodes.push(asked);
    var parts = answer && answer.type === "multimsg" ? answer.items || [] : [answer];
    parts.forEach(function (part) {
      var row = el("div", "pv-row pv-row-bot");
      row.appendChild(el("div", "pv-avatar pv-avatar-bot", (s.bot || "B").slice(0, 1)));
      row.appendChild(previewSingle(part, s));
      nodes.push(row);
    });
    screen.replaceChildren.apply(screen, nodes);
  }

  // ---- editor -------------------------------------------------------------------------------

  function Editor(root) {
    this.root = root;
    this.input = root.querySelector("[data-answer-input]");
    this.body = root.querySelector("[data-root]");
    this.screen = root.querySelector("[data-preview]");
    this.s = kit.strings(root, "strings");
    this.form = root.closest("form");
    this.titleInput = this.form ? this.form.querySelector("#id_title") : null;
    this.lastText = null; // {segments, index, caret}: where a link is inserted
    try {
      this.state = JSON.parse(this.input.value);
    } catch (error) {
      this.state = null;
    }
    if (!this.state || typeof this.state !== "object") this.state = blank("text");
    this.kept = {}; // answers of other types, kept while switching type back and forth
    var self = this;
    if (this.titleInput) {
      this.titleInput.addEventListener("input", function () {
        self.preview();
      });
    }
    this.render();
  }

  Editor.prototype.template = function (name) {
    var tpl = this.root.querySelector('template[data-tpl="' + name + '"]');
    return tpl.content.firstElementChild.cloneNode(true);
  };

  Editor.prototype.changed = function () {
    this.input.value = JSON.stringify(this.state);
    this.preview();
  };

  Editor.prototype.preview = function () {
    renderPreview(this.screen, this.state, this.titleInput ? this.titleInput.value : "", this.s);
  };

  Editor.prototype.render = function () {
    var self = this;
    var kind = this.template("kind");
    var select = kind.querySelector("[data-kind]");
    select.value = this.state.type;
    select.addEventListener("change", function () {
      self.kept[self.state.type] = self.state;
      self.state = self.kept[select.value] || blank(select.value);
      self.render();
    });
    var body = el("div", "ce-body");
    this.renderSingle(this.state, body, true);
    this.body.replaceChildren(kind, body);
    this.changed();
  };

  Editor.prototype.bindFields = function (node, object) {
    var self = this;
    node.querySelectorAll("[data-field]").forEach(function (input) {
      var name = input.getAttribute("data-field");
      input.value = object[name] || (input.tagName === "SELECT" ? input.value : "");
      if (input.tagName === "SELECT") object[name] = input.value;
      input.addEventListener("input", function () {
        object[name] = input.value;
        self.changed();
      });
      input.addEventListener("change", function () {
        object[name] = input.value;
        self.changed();
      });
    });
  };

  Editor.prototype.renderSingle = function (answer, container, topLevel) {
    var node = this.template(answer.type);
    container.replaceChildren(node);
    if (answer.type === "text") this.renderText(answer, node);
    else if (answer.type === "news") this.renderNews(answer, node);
    else if (answer.type === "multimsg" && topLevel) this.renderMulti(answer, node);
    else this.bindFields(node, answer);
  };

  // The first button of `node` marked data-action="name" (a part's own buttons come before
  // those of the articles or segments inside it) runs `action` when pressed.
  function onAction(node, name, action) {
    var button = node.querySelector('[data-action="' + name + '"]');
    if (button) button.addEventListener("click", action);
  }

  /* Draws `entries` into `list`, one node each from `build(entry, index)`, and gives each node's
   * ↑, ↓ and remove buttons their work on the array; `redraw` draws again and saves. After a
   * move the pressed arrow of the moved entry keeps the focus, to be pressed again. */
  function drawOrderable(list, entries, build, redraw) {
    var nodes = entries.map(function (entry, index) {
      var node = build(entry, index);
      var step = function (name, to) {
        onAction(node, name, function () {
          if (!move(entries, index, to)) return;
          redraw();
          list.children[to].querySelector('[data-action="' + name + '"]').focus();
        });
      };
      step("up", index - 1);
      step("down", index + 1);
      onAction(node, "remove", function () {
        entries.splice(index, 1);
        redraw();
      });
      return node;
    });
    list.replaceChildren.apply(list, nodes);
  }

  Editor.prototype.renderText = function (answer, node) {
    var self = this;
    var list = node.querySelector('[data-list="segments"]');
    var draw = function () {
      if (!Array.isArray(answer.segments) || answer.segments.length === 0) {
        answer.segments = [{ kind: "text", text: "" }];
      }
      var items = answer.segments.map(function (segment, index) {
        var name = segment.kind === "menu" ? "seg-menu" : segment.kind === "link" ? "seg-link" : "seg-text";
        var item = self.template(name);
        self.bindFields(item, segment);
        if (name === "seg-text") {
          var area = item.querySelector("textarea");
          var remember = function () {
            self.lastText = { answer: answer, index: index, caret: area.selectionStart };
          };
          ["focus", "keyup", "click", "select", "input"].forEach(function (event) {
            area.addEventListener(event, remember);
          });
        }
        onAction(item, "remove", function () {
          answer.segments.splice(index, 1);
          mergeTexts(answer);
          redraw();
        });
        return item;
      });
      list.replaceChildren.apply(list, items);
    };
    var redraw = function () {
      draw();
      self.changed();
    };
    var insert = function (segment) {
      var at = self.lastText && self.lastText.answer === answer ? self.lastText : null;
      if (at && answer.segments[at.index] && answer.segments[at.index].kind === "text") {
        var text = answer.segments[at.index].text || "";
        var caret = Math.min(at.caret || 0, text.length);
        answer.segments.splice(
          at.index,
          1,
          { kind: "text", text: text.slice(0, caret) },
          segment,
          { kind: "text", text: text.slice(caret) }
        );
      } else {
        answer.segments.push(segment, { kind: "text", text: "" });
      }
      self.lastText = null;
      dropEmptyTexts(answer);
      redraw();
      var position = answer.segments.indexOf(segment);
      var added = list.children[position];
      if (added) added.querySelector("input").focus();
    };
    onAction(node, "add-menu", function () {
      insert({ kind: "menu", label: "", question: "", menuid: "" });
    });
    onAction(node, "add-link", function () {
      insert({ kind: "link", label: "", url: "" });
    });
    draw();
  };

  function mergeTexts(answer) {
    var merged = [];
    answer.segments.forEach(function (segment) {
      var last = merged[merged.length - 1];
      if (segment.kind === "text" && last && last.kind === "text") {
        last.text = (last.text || "") + (segment.text || "");
      } else {
        merged.push(segment);
      }
    });
    answer.segments = merged.length ? merged : [{ kind: "text", text: "" }];
  }

  function dropEmptyTexts(answer) {
    // Keep one text box after each link so there is always somewhere to type.
    var kept = answer.segments.filter(function (segment, index, all) {
      if (segment.kind !== "text" || segment.text) return true;
      var next = all[index + 1];
      return !next || next.kind !== "text";
    });
    answer.segments = kept;
    mergeTexts(answer);
  }

  Editor.prototype.renderNews = function (answer, node) {
    var self = this;
    if (!Array.isArray(answer.articles)) answer.articles = [];
    var list = node.querySelector('[data-list="articles"]');
    var draw = function () {
      drawOrderable(list, answer.articles, function (article, index) {
        var card = self.template("article");
        card.querySelector("[data-number]").textContent = String(index + 1);
        self.bindFields(card, article);
        return card;
      }, redraw);
    };
    var redraw = function () {
      draw();
      self.changed();
    };
    onAction(node, "add-article", function () {
      answer.articles.push(blankArticle());
      redraw();
    });
    draw();
  };

  Editor.prototype.renderMulti = function (answer, node) {
    var self = this;
    if (!Array.isArray(answer.items)) answer.items = [];
    var list = node.querySelector('[data-list="items"]');
    var draw = function () {
      drawOrderable(list, answer.items, function (part) {
        var item = self.template("item");
        item.setAttribute("data-kind", part.type);
        item.querySelector("[data-item-label]").textContent = self.s["kind-" + part.type] || part.type;
        var body = item.querySelector("[data-item-body]");
        if (SINGLE_KINDS.indexOf(part.type) >= 0) self.renderSingle(part, body, false);
        return item;
      }, redraw);
    };
    var redraw = function () {
      draw();
      self.changed();
    };
    // A drag by the handle (SortableJS, vendored): the parts follow the moved element, then the
    // list is drawn again from them, as after the arrows.
    Sortable.create(list, {
      handle: ".ce-handle",
      draggable: ".ce-item",
      animation: 150,
      ghostClass: "ce-ghost",
      forceFallback: true,
      onEnd: function (event) {
        if (move(answer.items, event.oldIndex, event.newIndex)) redraw();
      },
    });
    onAction(node, "add-item", function () {
      answer.items.push(blank(node.querySelector("[data-add-kind]").value));
      redraw();
    });
    draw();
  };

  // A pushed reply whose standard question or skill changes leaves its old entry on the
  // platform: say so while the user types, before the save asks for the confirmation.
  function watchLeftover() {
    var note = document.querySelector(".chatbot-leftover-live");
    var title = document.getElementById("id_title");
    var skill = document.getElementById("id_skill");
    if (!note || !title) return;
    var check = function () {
      var changed =
        title.value.trim() !== note.getAttribute("data-pushed-title") ||
        (skill && skill.value !== note.getAttribute("data-skill"));
      note.hidden = !changed;
    };
    title.addEventListener("input", check);
    if (skill) skill.addEventListener("change", check);
    check();
  }

  kit.ready(watchLeftover);
  kit.each("[data-answer-editor]", function (root) {
    new Editor(root);
  });
  kit.each("[data-answer-readonly]", function (root) {
    var screen = root.querySelector("[data-preview]");
    var answer;
    try {
      answer = JSON.parse(screen.getAttribute("data-answer"));
    } catch (error) {
      return;
    }
    renderPreview(screen, answer, screen.getAttribute("data-title"), kit.strings(root, "strings"));
  });

  // The “试一试” panel (ask_bot.js) shows the bot's answers in the same phone.
  window.chatbotPreview = { render: renderPreview };
})();
