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

// One-click rating: the rating page's form is submitted by the browser on load, so the
// person's click on the email's link records it, while a link scanner that only fetches the
// page records nothing. Without script the person presses the button.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.querySelector("form[data-autosubmit]");
  if (!form || form.dataset.sent) { return; }
  form.dataset.sent = "1";
  var button = form.querySelector("button");
  if (button) { button.disabled = true; button.textContent = "Recording your rating…"; }
  form.submit();
});
