// Sends a fixed set of metrics through hot-shots to the bridge at argv[2]:argv[3], then exits.
// argv[4] "telegraf" switches hot-shots to Telegraf-style tags (name,k=v).
const StatsD = require("hot-shots");

const [host, port, style] = [process.argv[2], Number(process.argv[3]), process.argv[4]];
const client = new StatsD({
  host,
  port,
  prefix: "hs.",
  globalTags: { team: "web" },
  telegraf: style === "telegraf",
  maxBufferSize: 1000,
  bufferFlushInterval: 50,
  errorHandler: (error) => {
    console.error(`hot-shots error: ${error.message}`);
    process.exitCode = 1;
  },
});

client.increment("requests", 1, { route: "/home" });
client.increment("requests", 2, { route: "/home" });
client.decrement("inflight", 1, { route: "/home" });
client.gauge("queue", 7, { queue: "mail" });
client.gaugeDelta("queue", -2, { queue: "mail" });
client.timing("latency", 250, { route: "/home" });
client.histogram("payload", 512, { route: "/home" });
client.distribution("render", 40, { route: "/home" });
client.close((error) => {
  if (error) {
    console.error(`hot-shots close: ${error.message}`);
    process.exitCode = 1;
  }
});
