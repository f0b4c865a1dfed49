// @provides self global
// The window-like aliases agents expect (spec section 4: `global`, `self`).
return { self: globalThis, global: globalThis };
