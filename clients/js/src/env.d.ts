// CommonJS's module object, present only when pushwire.js is loaded with require().
declare var module: { exports?: unknown } | undefined;
