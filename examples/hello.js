// A first WapoJS script: `wapo exec examples/hello.js world`
const name = scriptArgs[0] ?? "wapo";
console.log(`running with ${scriptArgs.length} argument(s)`);
setTimeout(() => {
  scriptOutput = `hello, ${name}!\n`;
}, 10);
