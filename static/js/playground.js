// The max-tokens field follows the chosen model: its ceiling is what fits in that model's context
// beside a prompt (the server checks the exact prompt length and says so in words).
(function () {
  var limitsNode = document.getElementById("p-limits");
  var model = document.getElementById("p-model");
  var max = document.getElementById("p-max");
  var context = document.getElementById("p-context");
  if (!limitsNode || !model || !max) return;
  var limits = JSON.parse(limitsNode.textContent);

  function follow() {
    var limit = limits[model.value];
    if (!limit) return;
    max.max = limit.max_new_tokens;
    if (Number(max.value) > limit.max_new_tokens) max.value = limit.max_new_tokens;
    if (context) context.textContent = limit.context;
  }
  model.addEventListener("change", follow);
  follow();
})();
