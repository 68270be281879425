// The console's own script: small progressive enhancements over pages that work without it.
// No inline script runs (the Content-Security-Policy forbids it); everything hooks up here.
(function () {
  "use strict";

  function onReady(fn) {
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", fn);
    else fn();
  }

  // Selects marked data-autosubmit submit their form on change; their "Show" button is for
  // browsers without script.
  function autosubmit(root) {
    root.querySelectorAll("select[data-autosubmit]").forEach(function (sel) {
      sel.addEventListener("change", function () { sel.form.submit(); });
    });
    root.querySelectorAll("button.nojs").forEach(function (b) { b.hidden = true; });
  }

  // The live sum of a split's weights, shown beside it, marked when it is not 100.
  function splitSums(root) {
    root.querySelectorAll("[data-split]").forEach(function (split) {
      var out = split.querySelector("output[data-sum]");
      if (!out) return;
      function update() {
        var sum = 0;
        split.querySelectorAll("input[data-weight]").forEach(function (i) {
          var v = parseFloat(i.value);
          if (!isNaN(v)) sum += v;
        });
        sum = Math.round(sum * 1000) / 1000;
        out.textContent = String(sum);
        out.classList.toggle("bad", sum !== 100);
      }
      split.addEventListener("input", update);
      update();
    });
  }

  // A clause shows the segment picker for in_segment and the values box otherwise.
  function clauseKinds(root) {
    root.querySelectorAll("select[data-op]").forEach(function (op) {
      var cell = op.closest("tr");
      if (!cell) return;
      function update() {
        var seg = op.value === "in_segment";
        var none = op.value === "exists";
        cell.querySelectorAll("[data-values]").forEach(function (v) { v.closest("td").classList.toggle("segments-mode", seg); v.disabled = seg || none; });
        cell.querySelectorAll("[data-segments]").forEach(function (s) { s.disabled = !seg; });
      }
      op.addEventListener("change", update);
      update();
    });
  }

  // Drag a rule to reorder it: the rules' position fields follow the new order, which the server
  // reads on save. The Move buttons do the same from the keyboard.
  function dragRules(root) {
    var list = root.querySelector("#rules");
    if (!list) return;
    var dragged = null;
    list.addEventListener("dragstart", function (e) {
      var li = e.target.closest && e.target.closest("li[data-rule]");
      if (!li || li.getAttribute("draggable") !== "true") return;
      dragged = li;
      li.classList.add("dragging");
      e.dataTransfer.effectAllowed = "move";
      e.dataTransfer.setData("text/plain", li.id);
    });
    list.addEventListener("dragover", function (e) {
      if (!dragged) return;
      e.preventDefault();
      var over = e.target.closest && e.target.closest("li[data-rule]");
      if (!over || over === dragged) return;
      var r = over.getBoundingClientRect();
      list.insertBefore(dragged, e.clientY < r.top + r.height / 2 ? over : over.nextSibling);
    });
    list.addEventListener("dragend", function () {
      if (!dragged) return;
      dragged.classList.remove("dragging");
      dragged = null;
      list.querySelectorAll("li[data-rule]").forEach(function (li, i) {
        var pos = li.querySelector("input[data-position]");
        if (pos) pos.value = String(i);
      });
    });
  }

  // An htmx request refused by the server (403, 409, 503...) shows the server's message.
  function htmxErrors() {
    document.body.addEventListener("htmx:responseError", function (e) {
      var xhr = e.detail.xhr;
      var doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
      var msg = doc.querySelector(".error");
      var box = document.getElementById("htmx-error");
      if (!box) {
        box = document.createElement("p");
        box.id = "htmx-error";
        box.className = "error";
        box.setAttribute("role", "alert");
        var main = document.getElementById("main");
        main.insertBefore(box, main.firstChild);
      }
      box.textContent = msg ? msg.textContent : "The request failed (" + xhr.status + ").";
    });
  }

  // Copy buttons: data-copy names the element whose value or text is copied. The clipboard API
  // needs a secure context (https or localhost); elsewhere the text is selected and copied.
  function copyButtons() {
    document.body.addEventListener("click", function (e) {
      var b = e.target.closest && e.target.closest("button[data-copy]");
      if (!b) return;
      var el = document.getElementById(b.getAttribute("data-copy"));
      if (!el) return;
      var text = el.value !== undefined ? el.value : el.textContent;
      function done() {
        var label = b.textContent;
        b.textContent = "Copied";
        setTimeout(function () { b.textContent = label; }, 1500);
      }
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () { selectAndCopy(el); done(); });
      } else {
        selectAndCopy(el);
        done();
      }
    });
  }

  function selectAndCopy(el) {
    if (el.select) {
      el.select();
    } else {
      var range = document.createRange();
      range.selectNodeContents(el);
      var sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
    }
    try { document.execCommand("copy"); } catch (err) { /* selected: the person copies it */ }
  }

  // Buttons marked data-confirm ask in a modal dialog (not window.confirm: it blocks the page
  // and cannot be styled or read by tests); without script they submit at once.
  function confirmButtons() {
    var dialog = null;
    document.body.addEventListener("click", function (e) {
      var b = e.target.closest && e.target.closest("button[data-confirm]");
      if (!b || b.dataset.confirmed === "yes") return;
      e.preventDefault();
      if (!dialog) {
        dialog = document.createElement("dialog");
        dialog.className = "confirm-dialog";
        dialog.setAttribute("aria-labelledby", "confirm-dialog-msg");
        dialog.innerHTML = '<p id="confirm-dialog-msg"></p><p><button type="button" class="primary danger" data-dialog-ok>Confirm</button> <button type="button" data-dialog-cancel>Cancel</button></p>';
        document.body.appendChild(dialog);
        dialog.querySelector("[data-dialog-cancel]").addEventListener("click", function () { dialog.close(); });
      }
      dialog.querySelector("#confirm-dialog-msg").textContent = b.getAttribute("data-confirm");
      var ok = dialog.querySelector("[data-dialog-ok]");
      var fresh = ok.cloneNode(true);
      ok.replaceWith(fresh);
      fresh.textContent = b.textContent.trim() || "Confirm";
      fresh.addEventListener("click", function () {
        dialog.close();
        b.dataset.confirmed = "yes";
        b.form.requestSubmit(b);
      });
      dialog.showModal();
    });
  }

  // Colour swatches of environments (no inline styles under the CSP: set here).
  function swatches(root) {
    root.querySelectorAll("[data-color]").forEach(function (el) { el.style.backgroundColor = el.getAttribute("data-color"); });
  }

  onReady(function () {
    copyButtons();
    confirmButtons();
    swatches(document);
    document.body.addEventListener("htmx:afterSwap", function (e) {
      var f = e.detail.target && e.detail.target.querySelector ? e.detail.target.querySelector("[data-autofocus]") : null;
      if (!f) f = document.querySelector(".toggle-confirm [data-autofocus]");
      if (f) f.focus();
    });
    autosubmit(document);
    splitSums(document);
    clauseKinds(document);
    dragRules(document);
    htmxErrors();
  });
})();
