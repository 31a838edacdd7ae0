/*
 * Upload with a progress bar. A form marked data-upload-form still works without this
 * file (a plain multipart POST). With it, the file is sent by XMLHttpRequest so the
 * upload's progress can be shown in the form's <progress>; a file over the size limit
 * (the input's data-max-bytes) is refused before it is sent. The server answers JSON
 * {"redirect": url} on success, or the form again (400) with the reasons, which replaces
 * this one. No inline script: loaded with the page's nonce (CSP).
 */
(function () {
  "use strict";

  function text(form, name, fallback) {
    return form.getAttribute("data-" + name) || fallback;
  }

  function showError(form, message) {
    var box = form.querySelector("[data-upload-error]");
    if (!box) {
      return;
    }
    box.textContent = message;
    box.hidden = false;
    box.setAttribute("tabindex", "-1");
    box.focus();
  }

  function reset(form) {
    form.removeAttribute("data-uploading");
    form.removeAttribute("aria-busy");
    form.querySelectorAll("button[type=submit]").forEach(function (b) {
      b.disabled = false;
    });
    var progress = form.querySelector("[data-upload-progress]");
    if (progress) {
      progress.hidden = true;
    }
  }

  function replaceForm(form, html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    var fresh = template.content.querySelector("form[data-upload-form]");
    if (!fresh) {
      return false;
    }
    form.replaceWith(fresh);
    var summary = fresh.querySelector("[data-focus-on-load]");
    if (summary) {
      if (!summary.hasAttribute("tabindex")) {
        summary.setAttribute("tabindex", "-1");
      }
      summary.focus();
    }
    return true;
  }

  function send(form, file) {
    var progress = form.querySelector("[data-upload-progress]");
    var bar = form.querySelector("progress");
    var label = form.querySelector("[data-upload-progress-text]");
    var error = form.querySelector("[data-upload-error]");
    var failed = text(form, "failed-text", "The upload did not finish.");
    if (error) {
      error.hidden = true;
    }
    form.setAttribute("data-uploading", "true");
    form.setAttribute("aria-busy", "true");
    form.querySelectorAll("button[type=submit]").forEach(function (b) {
      b.disabled = true;
    });
    if (progress) {
      progress.hidden = false;
    }
    if (bar) {
      bar.value = 0;
    }

    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
    xhr.upload.addEventListener("progress", function (event) {
      if (!event.lengthComputable) {
        return;
      }
      var percent = Math.min(100, Math.round((event.loaded * 100) / event.total));
      if (bar) {
        bar.value = percent;
      }
      if (label) {
        label.textContent = text(form, "progress-text", "Uploading: {percent} %")
          .replace("{percent}", String(percent));
      }
    });
    xhr.upload.addEventListener("load", function () {
      if (label) {
        label.textContent = text(form, "done-text", "Uploaded.");
      }
    });
    xhr.addEventListener("load", function () {
      var type = xhr.getResponseHeader("Content-Type") || "";
      if (xhr.status === 200 && type.indexOf("application/json") === 0) {
        var answer = JSON.parse(xhr.responseText);
        window.location.assign(answer.redirect);
        return;
      }
      if (xhr.status === 400 && replaceForm(form, xhr.responseText)) {
        return;
      }
      if (xhr.status === 200 && xhr.responseURL) {
        // Sent somewhere else (e.g. signed out): go there.
        window.location.assign(xhr.responseURL);
        return;
      }
      reset(form);
      showError(form, failed);
    });
    xhr.addEventListener("error", function () {
      reset(form);
      showError(form, failed);
    });
    xhr.addEventListener("abort", function () {
      reset(form);
    });
    xhr.send(new FormData(form));
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-upload-form")) {
      return;
    }
    if (!window.FormData || !window.XMLHttpRequest) {
      return; // a plain POST
    }
    var input = form.querySelector("input[type=file]");
    var file = input && input.files && input.files[0];
    if (!file) {
      return; // the server says a file is needed
    }
    event.preventDefault();
    if (form.getAttribute("data-uploading") === "true") {
      return;
    }
    var max = parseInt(input.getAttribute("data-max-bytes") || "0", 10);
    if (max && file.size > max) {
      showError(form, text(form, "too-large-text", "The file is too large."));
      return;
    }
    send(form, file);
  });
})();
