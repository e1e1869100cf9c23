// Starts the rasa-webchat widget with the page's settings and makes it usable by keyboard and
// screen reader: names, button semantics, focus handling and announcements of new messages.
(function () {
  "use strict";

  var configElement = document.getElementById("chat-widget-config");
  var mountElement = document.getElementById("chat-widget");
  var announcer = document.getElementById("chat-announcer");
  if (!configElement || !mountElement || !announcer || !window.WebChat) {
    return;
  }
  var config = JSON.parse(configElement.textContent);
  // Announcements kept in the live region: enough for a burst of replies, never the whole chat.
  var MAX_ANNOUNCEMENTS = 8;

  // The widget's controls have no names of their own (icons only, or a placeholder).
  var LABELS = [
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

  function announce(text) {
    var line = document.createElement("p");
    line.textContent = text;
    announcer.appendChild(line);
    while (announcer.childElementCount > MAX_ANNOUNCEMENTS) {
      announcer.removeChild(announcer.firstElementChild);
    }
  }

  // The widget redraws its message list whenever it opens, with the stored history: messages in a
  // list that has just appeared are history and stay silent; later ones are new and are read out.
  // (A live region on the widget's own list would re-read the whole history on every opening.)
  var announced = new WeakSet();
  var shownList = null;

  function announceNewMessages(list) {
    var isNewList = list !== shownList;
    shownList = list;
    if (!list) {
      return;
    }
    list.querySelectorAll(".rw-response, .rw-replies").forEach(function (element) {
      var text = element.innerText.trim();
      // The typing dots are an empty response: wait for the text.
      if (announced.has(element) || !text) {
        return;
      }
      announced.add(element);
      if (isNewList) {
        return;
      }
      if (element.classList.contains("rw-replies")) {
        var choices = Array.prototype.map.call(element.querySelectorAll(".rw-reply"), function (reply) {
          return reply.innerText.trim();
        });
        announce("Choices: " + choices.join(", ") + ".");
      } else {
        announce("Assistant: " + text);
      }
    });
  }

  var wasOpen = false;
  // Whether the keyboard focus was last inside the chat (a click elsewhere on the page clears it).
  var focusWasInChat = false;
  document.addEventListener("focusin", function (event) {
    focusWasInChat = mountElement.contains(event.target);
  });
  document.addEventListener("pointerdown", function (event) {
    focusWasInChat = mountElement.contains(event.target);
  });

  function handleFocus(launcher, isOpen) {
    var focusIsLost = !document.activeElement || document.activeElement === document.body;
    var input = mountElement.querySelector(".rw-new-message");
    if (isOpen && focusIsLost && focusWasInChat && input) {
      // A chosen quick reply is removed with the focus on it: go on in the message box rather
      // than at the top of the page.
      input.focus();
    } else if (isOpen && !wasOpen) {
      // Opening moves focus into the chat, where the patient types.
      if (input && (focusIsLost || document.activeElement === launcher)) {
        input.focus();
      }
    } else if (!isOpen && wasOpen && launcher && (focusIsLost || !document.contains(document.activeElement))) {
      // Closing removes the focused close button: give focus back to the launcher.
      launcher.focus();
    }
    wasOpen = isOpen;
  }

  // On a phone the open chat covers the whole screen: the page under it is made inert, so that Tab
  // never moves the focus to a link hidden behind the chat (WCAG 2.4.11) and a screen reader
  // stays in the chat. The announcer stays outside the widget and is never made inert.
  function coverPage(isCovered) {
    Array.prototype.forEach.call(document.body.children, function (element) {
      if (element === mountElement || element === announcer || element.tagName === "SCRIPT") {
        return;
      }
      element.inert = isCovered;
    });
  }

  function chatCoversScreen(conversation) {
    if (!conversation) {
      return false;
    }
    var box = conversation.getBoundingClientRect();
    return box.width >= window.innerWidth - 1 && box.height >= window.innerHeight - 1;
  }

  function improveAccessibility() {
    var list = mountElement.querySelector(".rw-messages-container");
    var isOpen = Boolean(mountElement.querySelector(".rw-conversation-container"));
    var launcher = mountElement.querySelector(".rw-launcher");
    if (launcher) {
      // On a phone the open chat covers the launcher; on a wide screen it becomes the close button.
      launcher.setAttribute("aria-label", isOpen ? "Close the chat" : "Chat with our assistant");
      launcher.setAttribute("aria-expanded", String(isOpen));
    }
    LABELS.forEach(function (pair) {
      mountElement.querySelectorAll(pair[0]).forEach(function (element) {
        if (!element.hasAttribute("aria-label")) {
          element.setAttribute("aria-label", pair[1]);
        }
      });
    });
    // The quick replies are plain <div>s: give them button semantics and Enter/Space.
    mountElement.querySelectorAll("div.rw-reply:not([tabindex])").forEach(function (reply) {
      reply.setAttribute("role", "button");
      reply.setAttribute("tabindex", "0");
      reply.addEventListener("keydown", activateOnKeys);
    });
    if (list && !list.hasAttribute("role")) {
      // A scrolling list must be reachable by keyboard to be scrolled without a mouse.
      list.setAttribute("role", "region");
      list.setAttribute("aria-label", "Conversation");
      list.setAttribute("tabindex", "0");
    }
    var conversation = mountElement.querySelector(".rw-conversation-container");
    if (conversation && !conversation.hasAttribute("role")) {
      conversation.setAttribute("role", "dialog");
      conversation.setAttribute("aria-label", config.title + " chat");
    }
    coverPage(chatCoversScreen(conversation));
    announceNewMessages(list);
    handleFocus(launcher, isOpen);
  }

  // Escape closes the chat from anywhere in it (its close button shows on phones only; on a
  // wide screen the launcher closes it), so that it never has to stay over the page.
  mountElement.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || !mountElement.querySelector(".rw-conversation-container")) {
      return;
    }
    var close = mountElement.querySelector(".rw-close-button");
    var control = close && close.offsetParent ? close : mountElement.querySelector(".rw-launcher");
    if (control) {
      event.preventDefault();
      control.click();
    }
  });

  // Turning a phone or zooming changes whether the open chat covers the page.
  window.addEventListener("resize", improveAccessibility);
  new MutationObserver(improveAccessibility).observe(mountElement, {
    childList: true,
    subtree: true,
    characterData: true
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
