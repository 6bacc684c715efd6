// Test harness: drives one Pushwire client and records everything it reports,
// so that the pytest side can poll conditions with page.wait_for_function().
window.harness = (() => {
  const log = { events: [], messages: [], gaps: [], subscribed: [], subscriptionErrors: [], unsubscribed: [] };
  const subscriptions = new Map();
  let client = null;

  function describe(type, event) {
    const entry = { type, time: performance.now() };
    for (const key of ["transport", "attempt", "code", "reason", "wasOpen", "willReconnect", "state", "previous"]) {
      if (event[key] !== undefined) entry[key] = event[key];
    }
    if (event.error) entry.error = { code: event.error.code, message: event.error.message };
    return entry;
  }

  function start(url, options, channels) {
    client = new Pushwire(url, options);
    for (const type of ["connecting", "open", "close", "error", "state", "disconnected"]) {
      client.addEventListener(type, (event) => log.events.push(describe(type, event)));
    }
    for (const channel of channels || []) subscribe(channel);
    return client.state;
  }

  function subscribe(channel, options) {
    const subscription = client.subscribe(channel, (message) => log.messages.push(message), options);
    subscription.addEventListener("gap", (event) => log.gaps.push({ channel: event.channel, cursor: event.cursor }));
    subscription.addEventListener("subscribed", (event) =>
      log.subscribed.push({ channel: event.channel, cursor: event.cursor, recovered: event.recovered })
    );
    subscription.addEventListener("error", (event) =>
      log.subscriptionErrors.push({ channel, code: event.error.code, message: event.error.message })
    );
    subscription.addEventListener("unsubscribed", (event) => log.unsubscribed.push({ channel: event.channel }));
    subscriptions.set(channel, subscription);
  }

  function unsubscribe(channel) {
    subscriptions.get(channel).close();
    subscriptions.delete(channel);
  }

  async function publish(channel, data, options) {
    try {
      return { answer: await client.publish(channel, data, options) };
    } catch (error) {
      return { error: { name: error.name, code: error.code, message: error.message, status: error.status } };
    }
  }

  // getToken asks the test (window.mintToken, from page.expose_function) and counts its calls.
  let tokenCalls = 0;
  function startMinting(url, options, channels) {
    const getToken = async () => {
      tokenCalls += 1;
      return await window.mintToken();
    };
    return start(url, Object.assign({}, options, { getToken }), channels);
  }

  const data = (channel) => log.messages.filter((m) => m.channel === channel).map((m) => m.data);
  const events = (type) => log.events.filter((e) => e.type === type);

  return {
    log, start, startMinting, subscribe, unsubscribe, publish, data, events,
    get client() { return client; },
    get tokenCalls() { return tokenCalls; },
  };
})();
