// Progressive enhancement only: every form works without this file.
// Pre-fill the timezone from the browser when the field still holds the server default.
document.addEventListener("DOMContentLoaded", function () {
  var field = document.querySelector("input[data-browser-timezone]");
  if (!field || field.dataset.touched) { return; }
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && (field.value === "" || field.value === "UTC") && !document.querySelector(".error")) {
      field.value = zone;
    }
  } catch (e) { /* old browser: keep the default */ }
});
