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

  onReady(function () {
    autosubmit(document);
    splitSums(document);
    clauseKinds(document);
    dragRules(document);
    htmxErrors();
  });
})();
