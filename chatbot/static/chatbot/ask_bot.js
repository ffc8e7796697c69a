/*
 * “试一试”: ask the real bot from the console and show its answer in the phone preview.
 *
 * The server asks the platform (the signature is made there) and sends back what the bot
 * answered, already compared with the console's replies. Everything is drawn with
 * textContent: the bot's answer is data, never markup.
 */
(function () {
  "use strict";

  var kit = window.consoleKit;
  var el = kit.el;

  function card(result, query, s, preview) {
    var box = el("section", "chatbot-ask-card chatbot-ask-" + result.env);
    box.setAttribute("data-env", result.env);
    box.appendChild(el("h3", null, result.env_label));
    if (!result.ok) {
      box.appendChild(el("p", "errornote", result.error));
      return box;
    }
    box.appendChild(el("p", "chatbot-ask-status", result.status_label));
    if (result.standard_question) {
      var facts = el("p", "chatbot-ask-match");
      facts.appendChild(el("span", null, s.skill + ": " + (result.skill_name || "—") + " · "));
      facts.appendChild(el("span", null, s.question + ": " + result.standard_question));
      box.appendChild(facts);
    }
    if (result.reply_url) {
      var link = el("a", "chatbot-ask-reply", s.open);
      link.setAttribute("href", result.reply_url);
      box.appendChild(link);
    }
    (result.warnings || []).forEach(function (text) {
      box.appendChild(el("p", "errornote chatbot-ask-warning", text));
    });
    if (result.options && result.options.length) {
      box.appendChild(el("p", null, s.options));
      var list = el("ul", "chatbot-ask-options");
      result.options.forEach(function (option) {
        list.appendChild(el("li", null, option.title + " (" + option.confidence + ")"));
      });
      box.appendChild(list);
    }
    var phone = el("div", "chatbot-phone");
    var screen = el("div", "chatbot-phone-screen");
    phone.appendChild(screen);
    if (result.preview && window.chatbotPreview) {
      window.chatbotPreview.render(screen, result.preview, query, preview);
    } else {
      screen.appendChild(el("p", "help", s.noanswer));
    }
    box.appendChild(phone);
    return box;
  }

  function start(root) {
    var form = root.querySelector("[data-ask-form]");
    var out = root.querySelector("[data-ask-results]");
    var error = root.querySelector("[data-ask-error]");
    var s = kit.strings(root, "ask-strings");
    var preview = kit.strings(root, "strings");
    var fail = function (text) {
      out.replaceChildren();
      error.textContent = text;
      error.hidden = false;
    };
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var data = new FormData(form);
      var query = String(data.get("query") || "");
      error.hidden = true;
      out.replaceChildren(el("p", "help", s.asking));
      kit
        .requestJSON(form.getAttribute("action"), { method: "POST", body: data })
        .then(function (answer) {
          if (!answer.ok || !answer.body.results) {
            fail(answer.body.error || s.failed);
            return;
          }
          out.replaceChildren.apply(
            out,
            answer.body.results.map(function (result) {
              return card(result, query, s, preview);
            })
          );
        })
        .catch(function () {
          fail(s.failed);
        });
    });
  }

  kit.each("[data-ask-bot]", start);
})();
