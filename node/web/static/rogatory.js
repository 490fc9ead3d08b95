// Progressive enhancement only: every page works without this script.
"use strict";

function csrfOf(form) {
  const field = form.querySelector('input[name="csrf"]');
  return field ? field.value : "";
}

function showGaps(form, answer) {
  const list = document.getElementById("missing-list");
  const none = document.getElementById("missing-none");
  const language = document.getElementById("language-problem");
  const byField = new Map();
  for (const gap of answer.gaps) byField.set(gap.field, gap.message);
  list.replaceChildren();
  for (const gap of answer.gaps) {
    const item = document.createElement("li");
    item.dataset.field = gap.field;
    const link = document.createElement("a");
    link.href = "#" + gap.field;
    link.textContent = gap.field;
    item.append(link, ": " + gap.message);
    list.append(item);
  }
  if (answer.error) {
    const item = document.createElement("li");
    item.className = "error";
    item.textContent = answer.error.message + (answer.error.detail ? " (" + answer.error.detail + ")" : "");
    list.append(item);
  }
  none.hidden = answer.gaps.length > 0 || !!answer.error;
  language.hidden = !answer.language;
  language.textContent = answer.language || "";
  for (const note of form.querySelectorAll("[data-gap-for]")) {
    const message = byField.get(note.dataset.gapFor);
    note.hidden = !message;
    note.textContent = message || "";
    const input = document.getElementById(note.dataset.gapFor);
    if (input) {
      if (message) {
        input.setAttribute("aria-invalid", "true");
      } else {
        input.removeAttribute("aria-invalid");
      }
    }
  }
}

function watchCompleteness(form) {
  let timer = null;
  let sequence = 0;
  const check = async () => {
    const body = new URLSearchParams();
    for (const [name, value] of new FormData(form)) {
      if (typeof value === "string" && name !== "csrf") body.append(name, value);
    }
    const mine = ++sequence;
    const response = await fetch(form.dataset.check, {
      method: "POST", body, credentials: "same-origin",
      headers: {"X-CSRF-Token": csrfOf(form)},
    });
    if (!response.ok || mine !== sequence) return;
    showGaps(form, await response.json());
  };
  const later = () => { clearTimeout(timer); timer = setTimeout(check, 250); };
  form.addEventListener("input", later);
  form.addEventListener("change", later);
}

function watchRecipient(select) {
  const facts = document.getElementById("recipient-facts");
  select.addEventListener("change", () => {
    const option = select.selectedOptions[0];
    facts.replaceChildren();
    if (!option || !option.value) return;
    const fact = (label, id, text, tag) => {
      const line = document.createElement("p");
      const value = document.createElement(tag);
      value.id = id;
      value.textContent = text || "—";
      line.append(label, value);
      return line;
    };
    const languages = fact(facts.dataset.languagesLabel || "Accepted languages: ",
                           "accepted-languages", option.dataset.languages, "strong");
    const urgent = fact(facts.dataset.urgentLabel || "Urgent procedure: ",
                        "urgent-procedure", option.dataset.urgent, "span");
    facts.append(languages, urgent);
  });
}

function uploadWithProgress(form) {
  form.addEventListener("submit", (event) => {
    const files = [...form.querySelectorAll('input[type="file"]')].some((i) => i.files.length);
    if (!files) return;
    event.preventDefault();
    const data = new FormData(form, event.submitter);
    const box = form.querySelector(".upload");
    const bar = box.querySelector("progress");
    const percent = box.querySelector("span");
    box.hidden = false;
    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      bar.value = Math.round((100 * e.loaded) / e.total);
      percent.textContent = bar.value + " %";
    });
    request.addEventListener("load", () => {
      if (request.responseURL && request.responseURL !== form.action) {
        window.location.assign(request.responseURL);
      } else {
        document.open();
        document.write(request.responseText);
        document.close();
      }
    });
    request.send(data);
  });
}

function replyFields(form) {
  const kind = form.querySelector('select[name="kind"]');
  const update = () => {
    for (const part of form.querySelectorAll(".for")) {
      part.hidden = !part.classList.contains("for-" + kind.value);
    }
  };
  kind.addEventListener("change", update);
  update();
}

document.addEventListener("DOMContentLoaded", () => {
  const draft = document.getElementById("request-form");
  if (draft) watchCompleteness(draft);
  const to = document.querySelector("select[data-directory]");
  if (to) watchRecipient(to);
  for (const select of document.querySelectorAll("select[data-refresh]")) {
    select.addEventListener("change", () => {
      select.form.requestSubmit(select.form.querySelector('button[value="refresh"]'));
    });
  }
  for (const form of document.querySelectorAll("form.with-files")) uploadWithProgress(form);
  const reply = document.querySelector("form.reply");
  if (reply) replyFields(reply);
  document.body.classList.add("js");
});
