// Card payment with Stripe Elements, for every page with a #payment-form: the form names the
// publishable key, the SetupIntent's client secret and the URL that charges the saved card.
(function () {
  const form = document.getElementById("payment-form");
  if (!form) { return; }
  const errors = document.getElementById("card-errors");
  const button = document.getElementById("pay-button");
  const stripe = Stripe(form.dataset.publishableKey);
  const card = stripe.elements().create("card");
  card.mount("#card-element");

  function fail(message) {
    // A declined card: say so plainly (the page shows the same message afterwards).
    errors.textContent = message || "Your card was declined.";
    button.disabled = false;
  }

  async function charge() {
    const response = await fetch(form.dataset.chargeUrl, {
      method: "POST", credentials: "same-origin",
      headers: {"X-CSRFToken": form.querySelector("[name=csrfmiddlewaretoken]").value},
    });
    return [response.ok, await response.json()];
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    button.disabled = true;
    errors.textContent = "";
    const setup = await stripe.confirmCardSetup(form.dataset.clientSecret, {payment_method: {card: card}});
    if (setup.error) { return fail(setup.error.message); }
    const [ok, body] = await charge();
    if (!ok) { return fail(body.error && body.error.message); }
    if (body.status === "requires_action") {
      // 3-D Secure: Stripe.js shows the bank's challenge for the payment the server created.
      const result = await stripe.confirmCardPayment(body.client_secret);
      if (result.error) { return fail(result.error.message); }
    }
    window.location = body.next;
  });
})();
