// Progressive-delivery pages: time zones and copy buttons. The pages work without it: the time
// zone field is typed by hand (empty is UTC) and the secret is selected and copied by hand.
(function () {
  "use strict";

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function localValue(d) {
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }

  function zone() {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return ""; }
  }

  function init() {
    var tz = zone();
    // A stored UTC time moves into the browser's zone, and the zone field says which one.
    document.querySelectorAll("input[data-utc]").forEach(function (input) {
      if (!tz || !input.value) return;
      var d = new Date(input.value + ":00Z");
      if (isNaN(d.getTime())) return;
      input.value = localValue(d);
      var zoneField = input.form && input.form.querySelector("input[data-timezone]");
      if (zoneField) zoneField.value = tz;
    });
    // An empty zone field is the browser's zone (the server reads empty as UTC).
    document.querySelectorAll("input[data-timezone]").forEach(function (input) {
      if (!input.value && tz) input.value = tz;
    });
    // UTC times in lists get the person's local time beside them.
    document.querySelectorAll("time[data-local]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (isNaN(d.getTime())) return;
      var s = document.createElement("small");
      s.className = "localtime";
      s.textContent = " (" + d.toLocaleString(undefined, {dateStyle: "medium", timeStyle: "short"}) + " your time)";
      t.after(s);
    });
    // Copy buttons copy the field they name, and say so.
    document.querySelectorAll("button[data-copy]").forEach(function (b) {
      b.addEventListener("click", function () {
        var field = document.querySelector(b.getAttribute("data-copy"));
        if (!field) return;
        var status = document.querySelector(".copied");
        function done(ok) { if (status) status.textContent = ok ? b.textContent.replace("Copy ", "Copied the ") + "." : "Select the text and copy it."; }
        field.select();
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(field.value).then(function () { done(true); }, function () { done(false); });
        } else {
          try { done(document.execCommand("copy")); } catch (e) { done(false); }
        }
      });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
