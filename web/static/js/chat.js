// Starts the rasa-webchat widget with the page's settings and makes its controls keyboard-usable.
(function () {
  "use strict";

  var configElement = document.getElementById("chat-widget-config");
  var mountElement = document.getElementById("chat-widget");
  if (!configElement || !mountElement || !window.WebChat) {
    return;
  }
  var config = JSON.parse(configElement.textContent);

  // The widget's quick replies are plain <div>s and its launcher has no name: give them
  // button semantics, a name and Enter/Space, whenever the widget renders new ones.
  var LABELS = [
    [".rw-launcher", "Chat with our assistant"],
    [".rw-close-button", "Close the chat"],
    [".rw-send", "Send"],
    [".rw-new-message", "Your message"]
  ];

  function activateOnKeys(event) {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      event.currentTarget.click();
    }
  }

  function improveAccessibility() {
    LABELS.forEach(function (pair) {
      mountElement.querySelectorAll(pair[0]).forEach(function (element) {
        if (!element.hasAttribute("aria-label")) {
          element.setAttribute("aria-label", pair[1]);
        }
      });
    });
    mountElement.querySelectorAll("div.rw-reply:not([tabindex])").forEach(function (reply) {
      reply.setAttribute("role", "button");
      reply.setAttribute("tabindex", "0");
      reply.addEventListener("keydown", activateOnKeys);
    });
    var messages = mountElement.querySelector(".rw-messages-container");
    if (messages && !messages.hasAttribute("aria-live")) {
      messages.setAttribute("aria-live", "polite");
    }
  }

  new MutationObserver(improveAccessibility).observe(mountElement, {
    childList: true,
    subtree: true
  });

  window.WebChat.default(
    {
      socketUrl: config.socketUrl,
      socketPath: config.socketPath,
      initPayload: config.initPayload,
      title: config.title,
      subtitle: config.subtitle,
      inputTextFieldHint: config.inputTextFieldHint,
      customData: { language: "en" },
      params: { storage: config.storage },
      // A short pause reads as typing without making patients wait.
      customMessageDelay: function (message) {
        return Math.min(1200, Math.max(300, message.length * 10));
      }
    },
    mountElement
  );
})();
