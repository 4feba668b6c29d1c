// Preloaded into the Portkey gateway (`node --require`): its start script listens on
// every interface and has no option for the address, and the bench serves on loopback
// only. A listen() given a port and no host gets 127.0.0.1; nothing else changes.
"use strict";
const net = require("net");

const HOST = "127.0.0.1";
const listen = net.Server.prototype.listen;

net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (typeof first === "number" && typeof args[1] !== "string") {
    // (port, undefined, cb) or (port, cb): the host goes second.
    args.splice(1, args[1] === undefined ? 1 : 0, HOST);
  } else if (first && typeof first === "object" && "port" in first && !first.host) {
    args[0] = { ...first, host: HOST };
  }
  return listen.apply(this, args);
};
