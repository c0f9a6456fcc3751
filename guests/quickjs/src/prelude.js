// llmos QuickJS prelude.
//
// Evaluated once per run, before the artifact, under its own internal file
// name (see PRELUDE_FILE in lib.rs), so it never shifts the artifact's line
// numbers and its frames are dropped from reported stacks.
//
// The script's completion value is a factory: lib.rs calls it with the native
// hooks and gets back the helpers the guest itself needs. Nothing but
// `console` and the timer functions is left on the global object; the
// `kernel` object comes from the system volume's stdlib.js and init.js.
(function (native) {
  'use strict';

  // Capture intrinsics up front so that an artifact that patches built-ins
  // cannot break console output or error reporting.
  const uncurry = Function.prototype.bind.bind(Function.prototype.call);
  const O = Object;
  const getProto = O.getPrototypeOf;
  const getOwnDesc = O.getOwnPropertyDescriptor;
  const ownNames = O.getOwnPropertyNames;
  const ownSymbols = O.getOwnPropertySymbols;
  const ownKeys = Reflect.ownKeys;
  const isArray = Array.isArray;
  const isError = Error.isError;
  const objIs = O.is;
  const freeze = O.freeze;
  const defineProp = O.defineProperty;
  const StringCtor = String;
  const NumberCtor = Number;
  const MathMin = Math.min, MathMax = Math.max, MathSqrt = Math.sqrt, MathRound = Math.round, MathFloor = Math.floor;
  const hasOwn = O.hasOwn;
  const ObjToString = uncurry(O.prototype.toString);
  const propIsEnumerable = uncurry(O.prototype.propertyIsEnumerable);
  const FnToString = uncurry(Function.prototype.toString);
  const ArrJoin = uncurry(Array.prototype.join);
  const ArrPush = uncurry(Array.prototype.push);
  const ArrSlice = uncurry(Array.prototype.slice);
  const StrSlice = uncurry(String.prototype.slice);
  const StrRepeat = uncurry(String.prototype.repeat);
  const StrIncludes = uncurry(String.prototype.includes);
  const StrStartsWith = uncurry(String.prototype.startsWith);
  const StrEndsWith = uncurry(String.prototype.endsWith);
  const StrReplace = uncurry(String.prototype.replace);
  const StrCharCodeAt = uncurry(String.prototype.charCodeAt);
  const StrSplit = uncurry(String.prototype.split);
  const StrTrimEnd = uncurry(String.prototype.trimEnd);
  const StrPadStart = uncurry(String.prototype.padStart);
  const StrToWellFormed = uncurry(String.prototype.toWellFormed);
  const StrToUpperCase = uncurry(String.prototype.toUpperCase);
  const NumToString = uncurry(Number.prototype.toString);
  const RegExpTest = uncurry(RegExp.prototype.test);
  const RegExpToString = uncurry(RegExp.prototype.toString);
  const DateGetTime = uncurry(Date.prototype.getTime);
  const DateToISOString = uncurry(Date.prototype.toISOString);
  const SymToString = uncurry(Symbol.prototype.toString);
  const NumValueOf = uncurry(Number.prototype.valueOf);
  const StrValueOf = uncurry(String.prototype.valueOf);
  const BoolValueOf = uncurry(Boolean.prototype.valueOf);
  const BigIntValueOf = uncurry(BigInt.prototype.valueOf);
  const SymValueOf = uncurry(Symbol.prototype.valueOf);
  const getterOf = (proto, name) => uncurry(getOwnDesc(proto, name).get);
  const MapSize = getterOf(Map.prototype, 'size');
  const SetSize = getterOf(Set.prototype, 'size');
  const MapEntries = uncurry(Map.prototype.entries);
  const SetValues = uncurry(Set.prototype.values);
  const MapIterNext = uncurry(getProto(new Map().entries()).next);
  const SetIterNext = uncurry(getProto(new Set().values()).next);
  const RegExpSource = getterOf(RegExp.prototype, 'source');
  const TypedArrayProto = getProto(Uint8Array.prototype);
  const TypedArrayLength = getterOf(TypedArrayProto, 'length');
  const TypedArrayTag = getterOf(TypedArrayProto, Symbol.toStringTag);
  const ArrayBufferByteLength = getterOf(ArrayBuffer.prototype, 'byteLength');
  const DataViewByteLength = getterOf(DataView.prototype, 'byteLength');
  const WeakMapHas = uncurry(WeakMap.prototype.has);
  const WeakSetHas = uncurry(WeakSet.prototype.has);
  const WeakRefDeref = typeof WeakRef === 'function' ? uncurry(WeakRef.prototype.deref) : null;
  const SymbolToStringTag = Symbol.toStringTag;
  const SymbolIterator = Symbol.iterator;
  const DateNow = Date.now;

  const write = native.write;
  const promiseState = native.promiseState;

  // ------------------------------------------------------------ inspect

  const kObjectType = 0, kArrayType = 1, kArrayExtrasType = 2;
  const maxArrayLength = 100;
  const maxStringLength = 10000;
  const breakLength = 80;
  const compact = 3;
  const identRe = /^[a-zA-Z_$][a-zA-Z_$0-9]*$/;
  const strEscapeRe = /[\x00-\x1f\x27\x5c\x7f-\x9f\ud800-\udfff]/;

  function has(fn, v) {
    try { fn(v); return true; } catch (e) { return false; }
  }

  const meta = [
    '\\x00', '\\x01', '\\x02', '\\x03', '\\x04', '\\x05', '\\x06', '\\x07',
    '\\b', '\\t', '\\n', '\\x0B', '\\f', '\\r', '\\x0E', '\\x0F',
    '\\x10', '\\x11', '\\x12', '\\x13', '\\x14', '\\x15', '\\x16', '\\x17',
    '\\x18', '\\x19', '\\x1A', '\\x1B', '\\x1C', '\\x1D', '\\x1E', '\\x1F',
  ];

  function quote(str) {
    let q = "'";
    if (StrIncludes(str, "'")) {
      if (!StrIncludes(str, '"')) q = '"';
      else if (!StrIncludes(str, '`') && !StrIncludes(str, '${')) q = '`';
    }
    if (str.length < 5000 && !RegExpTest(strEscapeRe, str) && !StrIncludes(str, q)) {
      return q + str + q;
    }
    let out = '';
    let last = 0;
    for (let i = 0; i < str.length; i++) {
      const c = StrCharCodeAt(str, i);
      let rep;
      if (c < 0x20) rep = meta[c];
      else if (c === 0x5c) rep = '\\\\';
      else if (c === StrCharCodeAt(q, 0)) rep = '\\' + q;
      else if (c >= 0x7f && c <= 0x9f) rep = `\\x${StrToUpperCase(NumToString(c, 16))}`;
      else if (c >= 0xd800 && c <= 0xdfff) {
        if (c <= 0xdbff && i + 1 < str.length) {
          const d = StrCharCodeAt(str, i + 1);
          if (d >= 0xdc00 && d <= 0xdfff) { i++; continue; }
        }
        rep = `\\u${StrToUpperCase(NumToString(c, 16))}`;
      }
      else continue;
      out += StrSlice(str, last, i) + rep;
      last = i + 1;
    }
    return q + out + StrSlice(str, last) + q;
  }

  function formatNumber(n) {
    if (objIs(n, -0)) return '-0';
    return '' + n;
  }

  function formatPrimitive(v, ctx) {
    switch (typeof v) {
      case 'string': {
        let trailer = '';
        if (v.length > maxStringLength) {
          const remaining = v.length - maxStringLength;
          v = StrSlice(v, 0, maxStringLength);
          trailer = `... ${remaining} more character${remaining > 1 ? 's' : ''}`;
        }
        return quote(v) + trailer;
      }
      case 'number': return formatNumber(v);
      case 'bigint': return `${v}n`;
      case 'boolean': return '' + v;
      case 'undefined': return 'undefined';
      case 'symbol': return SymToString(v);
    }
    return 'null';
  }

  function formatKey(key) {
    if (typeof key === 'symbol') return `[${SymToString(key)}]`;
    if (RegExpTest(identRe, key)) return key;
    return quote(key);
  }

  // Name of the nearest constructor on the prototype chain, or null.
  function getCtorName(obj) {
    let o = obj;
    for (let depth = 0; o !== null && depth < 1000; depth++) {
      const d = getOwnDesc(o, 'constructor');
      if (d !== undefined && typeof d.value === 'function') {
        const nd = getOwnDesc(d.value, 'name');
        if (nd !== undefined && typeof nd.value === 'string' && nd.value !== '') return nd.value;
      }
      o = getProto(o);
    }
    return null;
  }

  function getPrefix(ctor, tag, fallback, size) {
    const sz = size === undefined ? '' : `(${size})`;
    if (ctor === null) {
      if (tag !== '' && fallback !== tag) return `[${fallback}${sz}: null prototype] [${tag}] `;
      return `[${fallback}${sz}: null prototype] `;
    }
    if (tag !== '' && ctor !== tag) return `${ctor}${sz} [${tag}] `;
    return `${ctor}${sz} `;
  }

  function fnBase(fn, ctorName) {
    let src = '';
    try { src = FnToString(fn); } catch (e) { }
    let nameDesc;
    try { nameDesc = getOwnDesc(fn, 'name'); } catch (e) { }
    const name = nameDesc !== undefined && typeof nameDesc.value === 'string' ? nameDesc.value : '';
    if (StrStartsWith(src, 'class') && /^class\b/.test(src)) {
      let b = `[class ${name || '(anonymous)'}`;
      const sup = getProto(fn);
      if (sup !== null && sup !== Function.prototype) {
        const sd = getOwnDesc(sup, 'name');
        if (sd && typeof sd.value === 'string' && sd.value) b += ` extends ${sd.value}`;
      }
      return b + ']';
    }
    let type = 'Function';
    const tag = ObjToString(fn);
    if (tag === '[object AsyncFunction]') type = 'AsyncFunction';
    else if (tag === '[object GeneratorFunction]') type = 'GeneratorFunction';
    else if (tag === '[object AsyncGeneratorFunction]') type = 'AsyncGeneratorFunction';
    let base = `[${type}`;
    if (ctorName === null) base += ' (null prototype)';
    base += name === '' ? ' (anonymous)' : `: ${name}`;
    base += ']';
    if (ctorName !== type && ctorName !== null && ctorName !== 'Function') base += ` ${ctorName}`;
    return base;
  }

  function errorParts(err) {
    let name, message, stack;
    try { name = err.name; } catch (e) { }
    try { message = err.message; } catch (e) { }
    try { stack = err.stack; } catch (e) { }
    return { name, message, stack };
  }

  function errorHead(err, ctorName) {
    const p = errorParts(err);
    let name = typeof p.name === 'string' ? p.name : 'Error';
    if (ctorName !== null && ctorName !== name && (name === 'Error' || name === '')) name = ctorName;
    const msg = p.message === undefined ? '' : safeString(p.message);
    return msg === '' ? name : `${name}: ${msg}`;
  }

  function formatError(err, ctorName, ctx) {
    const head = errorHead(err, ctorName);
    const { stack } = errorParts(err);
    let frames = typeof stack === 'string' ? StrTrimEnd(stack) : '';
    // QuickJS-ng's stack is only the frame lines; V8-style stacks start with the head.
    if (frames !== '' && !StrStartsWith(StrReplace(frames, /^\s+/, ''), 'at ')) {
      return frames;
    }
    if (frames === '') return `[${head}]`;
    let out = head + '\n' + frames;
    if (ctx.indentationLvl !== 0) {
      const ind = StrRepeat(' ', ctx.indentationLvl);
      out = ArrJoin(StrSplit(out, '\n'), `\n${ind}`);
    }
    return out;
  }

  function safeString(v) {
    try { return StringCtor(v); } catch (e) { }
    try { return inspect(v); } catch (e) { }
    return '[object]';
  }

  function formatValue(ctx, value, recurseTimes, typedArray) {
    if (typeof value !== 'object' && typeof value !== 'function') {
      return formatPrimitive(value, ctx);
    }
    if (value === null) return 'null';
    // Circular?
    const seenIdx = ctx.seen.indexOf(value);
    if (seenIdx !== -1) {
      let index = 1;
      if (ctx.circular === undefined) {
        ctx.circular = new Map();
        ctx.circular.set(value, index);
      } else {
        index = ctx.circular.get(value);
        if (index === undefined) {
          index = ctx.circular.size + 1;
          ctx.circular.set(value, index);
        }
      }
      return `[Circular *${index}]`;
    }
    return formatRaw(ctx, value, recurseTimes, typedArray);
  }

  function formatRaw(ctx, value, recurseTimes, typedArray) {
    let keys;
    let protoProps;
    const ctorName = getCtorName(value);
    let tag = '';
    try {
      const t = value[SymbolToStringTag];
      if (typeof t === 'string') tag = t;
    } catch (e) { }
    if (tag !== '' && ctorName !== null && tag === ctorName) tag = '';

    let base = '';
    let formatter = formatNoEntries;
    let braces;
    let noIterator = true;
    let extrasType = kObjectType;
    let size;

    const filterEnumerable = (obj) => {
      const out = [];
      const names = ownNames(obj);
      for (let i = 0; i < names.length; i++) {
        if (propIsEnumerable(obj, names[i])) ArrPush(out, names[i]);
      }
      const syms = ownSymbols(obj);
      for (let i = 0; i < syms.length; i++) {
        if (propIsEnumerable(obj, syms[i])) ArrPush(out, syms[i]);
      }
      return out;
    };

    if (isArray(value)) {
      // Only non-index keys are printed as extras.
      const all = filterEnumerable(value);
      keys = [];
      for (let i = 0; i < all.length; i++) {
        const k = all[i];
        if (typeof k === 'symbol' || !RegExpTest(/^(0|[1-9][0-9]*)$/, k) || NumberCtor(k) >= 4294967295) ArrPush(keys, k);
      }
      const prefix = (ctorName !== 'Array' || tag !== '') ? getPrefix(ctorName, tag, 'Array', value.length) : '';
      braces = [`${prefix}[`, ']'];
      if (value.length === 0 && keys.length === 0) return `${braces[0]}]`;
      extrasType = kArrayExtrasType;
      formatter = formatArray;
    } else if (has(SetSize, value)) {
      size = SetSize(value);
      keys = filterEnumerable(value);
      const prefix = getPrefix(ctorName, tag, 'Set', size);
      formatter = formatSet;
      if (size === 0 && keys.length === 0) return `${prefix}{}`;
      braces = [`${prefix}{`, '}'];
    } else if (has(MapSize, value)) {
      size = MapSize(value);
      keys = filterEnumerable(value);
      const prefix = getPrefix(ctorName, tag, 'Map', size);
      formatter = formatMap;
      if (size === 0 && keys.length === 0) return `${prefix}{}`;
      braces = [`${prefix}{`, '}'];
    } else if (has(TypedArrayLength, value)) {
      keys = [];
      const all = filterEnumerable(value);
      for (let i = 0; i < all.length; i++) {
        const k = all[i];
        if (typeof k === 'symbol' || !RegExpTest(/^(0|[1-9][0-9]*)$/, k)) ArrPush(keys, k);
      }
      const len = TypedArrayLength(value);
      const fallback = TypedArrayTag(value);
      const prefix = getPrefix(ctorName, tag === fallback ? '' : tag, fallback, len);
      braces = [`${prefix}[`, ']'];
      if (len === 0 && keys.length === 0) return `${braces[0]}]`;
      formatter = formatTypedArray;
      extrasType = kArrayExtrasType;
    } else {
      keys = filterEnumerable(value);
      braces = ['{', '}'];
      if (ctorName === 'Object' && tag === '' && !isError(value) && typeof value !== 'function') {
        if (ObjToString(value) === '[object Arguments]') {
          braces[0] = '[Arguments] [';
          braces[1] = ']';
          extrasType = kArrayExtrasType;
          formatter = formatArguments;
          keys = [];
          if (value.length === 0) return '[Arguments] []';
        } else if (keys.length === 0 && promiseState(value) === undefined) {
          return '{}';
        }
      }
      if (formatter === formatArguments) {
        // handled above
      } else if (typeof value === 'function') {
        base = fnBase(value, ctorName);
        // Drop the standard own properties of functions.
        if (keys.length === 0) return base;
      } else if (has(RegExpSource, value) && ObjToString(value) === '[object RegExp]') {
        base = RegExpToString(value);
        const prefix = getPrefix(ctorName, tag, 'RegExp');
        if (prefix !== 'RegExp ') base = `${prefix}${base}`;
        if (keys.length === 0) return base;
      } else if (has(DateGetTime, value)) {
        const t = DateGetTime(value);
        base = t !== t ? 'Invalid Date' : DateToISOString(value);
        const prefix = getPrefix(ctorName, tag, 'Date');
        if (prefix !== 'Date ') base = `${prefix}${base}`;
        if (keys.length === 0) return base;
      } else if (isError(value)) {
        base = formatError(value, ctorName, ctx);
        const ks = [];
        for (let i = 0; i < keys.length; i++) {
          if (keys[i] !== 'stack' && keys[i] !== 'message') ArrPush(ks, keys[i]);
        }
        keys = ks;
        if (keys.length === 0) return base;
      } else if (has(NumValueOf, value)) {
        base = `[Number: ${formatNumber(NumValueOf(value))}]`;
        if (keys.length === 0) return base;
      } else if (has(StrValueOf, value)) {
        const s = StrValueOf(value);
        base = `[String: ${formatPrimitive(s, ctx)}]`;
        const ks = [];
        for (let i = 0; i < keys.length; i++) {
          const k = keys[i];
          if (typeof k === 'symbol' || !RegExpTest(/^(0|[1-9][0-9]*)$/, k) || NumberCtor(k) >= s.length) ArrPush(ks, k);
        }
        keys = ks;
        if (keys.length === 0) return base;
      } else if (has(BoolValueOf, value)) {
        base = `[Boolean: ${BoolValueOf(value)}]`;
        if (keys.length === 0) return base;
      } else if (has(BigIntValueOf, value)) {
        base = `[BigInt: ${BigIntValueOf(value)}n]`;
        if (keys.length === 0) return base;
      } else if (has(SymValueOf, value)) {
        base = `[Symbol: ${SymToString(SymValueOf(value))}]`;
        if (keys.length === 0) return base;
      } else if (promiseState(value) !== undefined) {
        braces[0] = `${getPrefix(ctorName, tag, 'Promise')}{`;
        formatter = formatPromise;
      } else if (has(WeakSetHas, value)) {
        braces[0] = `${getPrefix(ctorName, tag, 'WeakSet')}{`;
        formatter = formatWeakUnknown;
      } else if (has(WeakMapHas, value)) {
        braces[0] = `${getPrefix(ctorName, tag, 'WeakMap')}{`;
        formatter = formatWeakUnknown;
      } else if (has(ArrayBufferByteLength, value)) {
        braces[0] = `${getPrefix(ctorName, tag, 'ArrayBuffer')}{`;
        formatter = formatArrayBuffer;
      } else if (has(DataViewByteLength, value)) {
        braces[0] = `${getPrefix(ctorName, tag, 'DataView')}{`;
        ArrPush(keys, 'byteLength', 'byteOffset', 'buffer');
      } else {
        if (ctorName === 'Object') {
          if (tag !== '') braces[0] = `${getPrefix(ctorName, tag, 'Object')}{`;
        } else {
          braces[0] = `${getPrefix(ctorName, tag, 'Object')}{`;
        }
        if (keys.length === 0) return `${braces[0]}}`;
      }
    }

    if (recurseTimes > ctx.depth && ctx.depth !== null) {
      let name = ctorName || tag || 'Object';
      if (isArray(value)) name = 'Array';
      return `[${name}]`;
    }
    recurseTimes += 1;
    ArrPush(ctx.seen, value);
    ctx.currentDepth = recurseTimes;
    let output;
    try {
      output = formatter(ctx, value, recurseTimes);
      for (let i = 0; i < keys.length; i++) {
        ArrPush(output, formatProperty(ctx, value, recurseTimes, keys[i], extrasType));
      }
    } finally {
      ctx.seen.pop();
    }
    if (ctx.circular !== undefined) {
      const index = ctx.circular.get(value);
      if (index !== undefined) {
        const reference = `<ref *${index}>`;
        if (base === '') braces[0] = `${reference} ${braces[0]}`;
        else base = `${reference} ${base}`;
      }
    }
    return reduceToSingleString(ctx, output, base, braces, extrasType, recurseTimes, value);
  }

  function formatNoEntries() { return []; }

  function formatWeakUnknown() {
    return ['<items unknown>'];
  }

  function formatArrayBuffer(ctx, value) {
    let len = 0;
    try { len = ArrayBufferByteLength(value); } catch (e) { }
    let hex = '';
    try {
      const bytes = new Uint8Array(value, 0, MathMin(len, 50));
      const parts = [];
      for (let i = 0; i < bytes.length; i++) ArrPush(parts, StrPadStart(NumToString(bytes[i], 16), 2, '0'));
      hex = ArrJoin(parts, ' ');
      if (len > 50) hex += ` ... ${len - 50} more byte${len - 50 > 1 ? 's' : ''}`;
    } catch (e) { }
    return [`[Uint8Contents]: <${hex}>`, `byteLength: ${len}`];
  }

  function formatPromise(ctx, value, recurseTimes) {
    const st = promiseState(value);
    if (st === undefined || st[0] === 0) return ['<pending>'];
    ctx.indentationLvl += 2;
    const str = formatValue(ctx, st[1], recurseTimes);
    ctx.indentationLvl -= 2;
    return [st[0] === 2 ? `<rejected> ${str}` : str];
  }

  function formatArrayLike(ctx, value, recurseTimes, len, get) {
    const output = [];
    const outputLength = MathMin(maxArrayLength, len);
    const remaining = len - outputLength;
    for (let i = 0; i < outputLength; i++) {
      ArrPush(output, get(i));
    }
    if (remaining > 0) ArrPush(output, `... ${remaining} more item${remaining > 1 ? 's' : ''}`);
    return output;
  }

  function formatArray(ctx, value, recurseTimes) {
    const len = value.length;
    const output = [];
    const outputLength = MathMin(maxArrayLength, len);
    let i = 0;
    let shown = 0;
    while (i < len && shown < outputLength) {
      if (!hasOwn(value, i)) {
        let j = i;
        while (j < len && !hasOwn(value, j)) j++;
        const holes = j - i;
        ArrPush(output, `<${holes} empty item${holes > 1 ? 's' : ''}>`);
        i = j;
        shown++;
        continue;
      }
      ArrPush(output, formatProperty(ctx, value, recurseTimes, i, kArrayExtrasType));
      i++;
      shown++;
    }
    const remaining = len - i;
    if (remaining > 0) ArrPush(output, `... ${remaining} more item${remaining > 1 ? 's' : ''}`);
    return output;
  }

  function formatTypedArray(ctx, value, recurseTimes) {
    const len = TypedArrayLength(value);
    return formatArrayLike(ctx, value, recurseTimes, len, (i) => {
      const v = value[i];
      return typeof v === 'bigint' ? `${v}n` : formatNumber(v);
    });
  }

  function formatArguments(ctx, value, recurseTimes) {
    return formatArrayLike(ctx, value, recurseTimes, value.length,
      (i) => formatValue(ctx, value[i], recurseTimes));
  }

  function formatSet(ctx, value, recurseTimes) {
    const output = [];
    const it = SetValues(value);
    ctx.indentationLvl += 2;
    let n = 0;
    for (let r = SetIterNext(it); !r.done; r = SetIterNext(it)) {
      if (n >= maxArrayLength) { n++; continue; }
      ArrPush(output, formatValue(ctx, r.value, recurseTimes));
      n++;
    }
    ctx.indentationLvl -= 2;
    if (n > maxArrayLength) {
      const remaining = n - maxArrayLength;
      ArrPush(output, `... ${remaining} more item${remaining > 1 ? 's' : ''}`);
    }
    return output;
  }

  function formatMap(ctx, value, recurseTimes) {
    const output = [];
    const it = MapEntries(value);
    ctx.indentationLvl += 2;
    let n = 0;
    for (let r = MapIterNext(it); !r.done; r = MapIterNext(it)) {
      if (n >= maxArrayLength) { n++; continue; }
      const k = formatValue(ctx, r.value[0], recurseTimes);
      const v = formatValue(ctx, r.value[1], recurseTimes);
      ArrPush(output, `${k} => ${v}`);
      n++;
    }
    ctx.indentationLvl -= 2;
    if (n > maxArrayLength) {
      const remaining = n - maxArrayLength;
      ArrPush(output, `... ${remaining} more item${remaining > 1 ? 's' : ''}`);
    }
    return output;
  }

  function formatProperty(ctx, value, recurseTimes, key, type) {
    let name, str;
    let desc = getOwnDesc(value, key);
    if (desc === undefined) desc = { value: value[key], enumerable: true };
    if (desc.value !== undefined || !('get' in desc || 'set' in desc)) {
      const diff = (ctx.compact !== true || type !== kObjectType) ? 2 : 3;
      ctx.indentationLvl += diff;
      str = formatValue(ctx, desc.value, recurseTimes);
      ctx.indentationLvl -= diff;
    } else if (desc.get !== undefined) {
      str = desc.set !== undefined ? '[Getter/Setter]' : '[Getter]';
    } else if (desc.set !== undefined) {
      str = '[Setter]';
    } else {
      str = 'undefined';
    }
    if (type === kArrayExtrasType && typeof key === 'number') return str;
    name = formatKey(key);
    return `${name}: ${str}`;
  }

  function isBelowBreakLength(ctx, output, start, base) {
    let totalLength = output.length + start;
    if (totalLength + output.length > breakLength) return false;
    for (let i = 0; i < output.length; i++) {
      totalLength += output[i].length;
      if (totalLength > breakLength) return false;
    }
    return base === '' || !StrIncludes(base, '\n');
  }

  function groupArrayElements(ctx, output, value) {
    let totalLength = 0;
    let maxLength = 0;
    let i = 0;
    let outputLength = output.length;
    if (value !== undefined && outputLength > 0 && StrStartsWith(output[outputLength - 1], '... ') &&
        StrIncludes(output[outputLength - 1], ' more item')) {
      outputLength--;
    }
    const separatorSpace = 2; // ", "
    const dataLen = new Array(outputLength);
    for (; i < outputLength; i++) {
      const len = output[i].length;
      dataLen[i] = len;
      totalLength += len + separatorSpace;
      if (maxLength < len) maxLength = len;
    }
    const actualMax = maxLength + separatorSpace;
    if (actualMax * 3 + ctx.indentationLvl < breakLength &&
        (totalLength / actualMax > 5 || maxLength <= 6)) {
      const approxCharHeights = 2.5;
      const averageBias = MathSqrt(actualMax - totalLength / output.length);
      const biasedMax = MathMax(actualMax - 3 - averageBias, 1);
      const columns = MathMin(
        MathRound(MathSqrt(approxCharHeights * biasedMax * outputLength) / biasedMax),
        MathFloor((breakLength - ctx.indentationLvl) / actualMax),
        compact * 4,
        15,
      );
      if (columns <= 1) return output;
      const tmp = [];
      const maxLineLength = [];
      for (let c = 0; c < columns; c++) {
        let lineLength = 0;
        for (let j = c; j < outputLength; j += columns) {
          if (dataLen[j] > lineLength) lineLength = dataLen[j];
        }
        ArrPush(maxLineLength, lineLength + separatorSpace);
      }
      let allNumbers = true;
      if (value !== undefined) {
        for (let k = 0; k < outputLength; k++) {
          const v = value[k];
          if (typeof v !== 'number' && typeof v !== 'bigint') { allNumbers = false; break; }
        }
      } else {
        allNumbers = false;
      }
      for (let k = 0; k < outputLength; k += columns) {
        const max = MathMin(k + columns, outputLength);
        let str = '';
        let j = k;
        for (; j < max - 1; j++) {
          const padding = maxLineLength[j - k] + output[j].length - dataLen[j];
          const cell = `${output[j]}, `;
          str += allNumbers ? StrPadStart(cell, padding, ' ') : cell + StrRepeat(' ', MathMax(0, padding - cell.length));
        }
        if (allNumbers) {
          const padding = maxLineLength[j - k] + output[j].length - dataLen[j] - separatorSpace;
          str += StrPadStart(output[j], padding, ' ');
        } else {
          str += output[j];
        }
        ArrPush(tmp, str);
      }
      if (outputLength < output.length) ArrPush(tmp, output[outputLength]);
      return tmp;
    }
    return output;
  }

  function reduceToSingleString(ctx, output, base, braces, extrasType, recurseTimes, value) {
    const entries = output.length;
    if (extrasType === kArrayExtrasType && entries > 6) {
      output = groupArrayElements(ctx, output, value);
    }
    if (ctx.currentDepth - recurseTimes < compact && entries === output.length) {
      const start = output.length + ctx.indentationLvl + braces[0].length + base.length + 10;
      if (isBelowBreakLength(ctx, output, start, base)) {
        const joined = ArrJoin(output, ', ');
        if (!StrIncludes(joined, '\n')) {
          return `${base ? `${base} ` : ''}${braces[0]} ${joined} ${braces[1]}`;
        }
      }
    }
    const indentation = `\n${StrRepeat(' ', ctx.indentationLvl)}`;
    return `${base ? `${base} ` : ''}${braces[0]}${indentation}  ${ArrJoin(output, `,${indentation}  `)}${indentation}${braces[1]}`;
  }

  function inspect(value, opts) {
    const ctx = {
      seen: [],
      circular: undefined,
      indentationLvl: 0,
      currentDepth: 0,
      depth: 2,
      compact: compact,
    };
    if (opts !== undefined && opts !== null && typeof opts === 'object') {
      if (opts.depth === null || opts.depth === Infinity) ctx.depth = null;
      else if (typeof opts.depth === 'number') ctx.depth = opts.depth;
    }
    return formatValue(ctx, value, 0);
  }

  // Console formatting: strings raw, everything else inspected, joined by a space.
  function formatArgs(args) {
    let out = '';
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      if (i > 0) out += ' ';
      out += typeof a === 'string' ? a : inspect(a);
    }
    return out;
  }

  // ------------------------------------------------------------ console

  let groupIndent = '';
  function emit(fd, text) {
    if (groupIndent !== '') {
      text = groupIndent + ArrJoin(StrSplit(text, '\n'), '\n' + groupIndent);
    }
    // Lone surrogates become U+FFFD, as node writes them.
    write(fd, StrToWellFormed(text + '\n'));
  }

  const counts = new Map();
  const timers = new Map();
  const now = typeof performance === 'object' && performance !== null && typeof performance.now === 'function'
    ? performance.now.bind(performance) : DateNow;

  const console = {
    log(...args) { emit(1, formatArgs(args)); },
    info(...args) { emit(1, formatArgs(args)); },
    debug(...args) { emit(1, formatArgs(args)); },
    warn(...args) { emit(2, formatArgs(args)); },
    error(...args) { emit(2, formatArgs(args)); },
    trace(...args) {
      const e = new Error();
      let stack = '';
      try { stack = StrTrimEnd(StrReplace(e.stack, /^.*\n/, '')); } catch (x) { }
      emit(2, `Trace${args.length ? ': ' + formatArgs(args) : ''}${stack ? '\n' + stack : ''}`);
    },
    dir(obj, options) { emit(1, inspect(obj, options)); },
    table(...args) { emit(1, formatArgs(args)); },
    assert(cond, ...args) {
      if (!cond) {
        emit(2, args.length ? `Assertion failed: ${formatArgs(args)}` : 'Assertion failed');
      }
    },
    group(...args) {
      if (args.length) emit(1, formatArgs(args));
      groupIndent += '  ';
    },
    groupCollapsed(...args) { console.group(...args); },
    groupEnd() { groupIndent = StrSlice(groupIndent, 0, MathMax(0, groupIndent.length - 2)); },
    count(label = 'default') {
      label = `${label}`;
      const n = (counts.get(label) || 0) + 1;
      counts.set(label, n);
      emit(1, `${label}: ${n}`);
    },
    countReset(label = 'default') { counts.delete(`${label}`); },
    time(label = 'default') { timers.set(`${label}`, now()); },
    timeLog(label = 'default', ...args) {
      label = `${label}`;
      const t = timers.get(label);
      if (t === undefined) { emit(2, `Warning: No such label '${label}' for console.timeLog()`); return; }
      emit(1, `${label}: ${(now() - t).toFixed(3)}ms${args.length ? ' ' + formatArgs(args) : ''}`);
    },
    timeEnd(label = 'default') {
      label = `${label}`;
      const t = timers.get(label);
      if (t === undefined) { emit(2, `Warning: No such label '${label}' for console.timeEnd()`); return; }
      timers.delete(label);
      emit(1, `${label}: ${(now() - t).toFixed(3)}ms`);
    },
  };
  defineProp(globalThis, 'console', { value: console, writable: true, enumerable: false, configurable: true });

  // ------------------------------------------------------------ Math.random

  // QuickJS-ng seeds Math.random from the clock; the native replacement is
  // seeded from WASI random, which the host can seed for reproducible runs.
  defineProp(Math, 'random', { value: native.random, writable: true, enumerable: false, configurable: true });

  // ------------------------------------------------------------ timers

  // setTimeout / setInterval / clearTimeout / clearInterval. The queue lives
  // here; lib.rs runs the event loop after the artifact (timerWait, then
  // sleep, then timerFire, then drain jobs, until no timer remains). Times are
  // milliseconds of the WASI monotonic clock since the run's first reading.
  const monoNow = native.now;
  const ReflectApply = Reflect.apply;
  const MapGet = uncurry(Map.prototype.get);
  const MapSet = uncurry(Map.prototype.set);
  const MapDelete = uncurry(Map.prototype.delete);
  const TIMEOUT_MAX = 2147483647;
  const timerById = new Map();  // id -> live record
  const timerHeap = [];         // records, min-heap on (due, seq); cancelled ones skipped lazily
  let timerNextId = 1, timerNextSeq = 1;

  function timerLess(a, b) { return a.due < b.due || (a.due === b.due && a.seq < b.seq); }
  function heapPush(r) {
    let i = timerHeap.length;
    timerHeap[i] = r;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!timerLess(timerHeap[i], timerHeap[p])) break;
      const t = timerHeap[i]; timerHeap[i] = timerHeap[p]; timerHeap[p] = t;
      i = p;
    }
  }
  function heapPop() {
    const top = timerHeap[0];
    const last = timerHeap[timerHeap.length - 1];
    timerHeap.length -= 1;
    const n = timerHeap.length;
    if (n > 0) {
      timerHeap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < n && timerLess(timerHeap[l], timerHeap[m])) m = l;
        if (r < n && timerLess(timerHeap[r], timerHeap[m])) m = r;
        if (m === i) break;
        const t = timerHeap[i]; timerHeap[i] = timerHeap[m]; timerHeap[m] = t;
        i = m;
      }
    }
    return top;
  }
  // Browser/node coercion: NaN, negative → 0; above 2^31-1 → 1 (node).
  function timerDelay(d) {
    d = NumberCtor(d);
    if (!(d >= 0)) return 0;
    if (d > TIMEOUT_MAX) return 1;
    return d;
  }
  function schedule(r) {
    r.due = monoNow() + r.delay;
    r.seq = timerNextSeq++;
    heapPush(r);
  }
  function addTimer(cb, delay, args, repeat) {
    if (typeof cb !== 'function') {
      throw new TypeError('The "callback" argument must be of type function. Received ' + typeName(cb));
    }
    let d = timerDelay(delay);
    if (repeat && d < 1) d = 1;
    const id = timerNextId++;
    const r = { id, cb, args, delay: d, repeat, due: 0, seq: 0 };
    MapSet(timerById, id, r);
    schedule(r);
    return id;
  }
  function clearTimer(id) {
    if (typeof id === 'number' || typeof id === 'string') MapDelete(timerById, NumberCtor(id));
  }
  // Skip cancelled records; -1 when no timer remains, else ms until the earliest is due.
  function timerWait() {
    while (timerHeap.length > 0) {
      const r = timerHeap[0];
      if (MapGet(timerById, r.id) === r) {
        const w = r.due - monoNow();
        return w > 0 ? w : 0;
      }
      heapPop();
    }
    return -1;
  }
  // Run the earliest timer (lib.rs has slept until it is due).
  function timerFire() {
    if (timerWait() < 0) return;
    const r = heapPop();
    if (r.repeat) schedule(r); else MapDelete(timerById, r.id);
    ReflectApply(r.cb, undefined, r.args);
  }
  const timerGlobals = {
    setTimeout(callback, delay, ...args) { return addTimer(callback, delay, args, false); },
    setInterval(callback, delay, ...args) { return addTimer(callback, delay, args, true); },
    clearTimeout(id) { clearTimer(id); },
    clearInterval(id) { clearTimer(id); },
  };
  for (const name of ['setTimeout', 'setInterval', 'clearTimeout', 'clearInterval']) {
    defineProp(globalThis, name, { value: timerGlobals[name], writable: true, enumerable: false, configurable: true });
  }

  // ------------------------------------------------------------ error positions

  // The reported error position must survive an artifact that tampers with
  // the stack machinery. `describe` reads an Error's [[ErrorData]] stack
  // through the original `Error.prototype.stack` getter (so deleting or
  // redefining `stack` hides nothing), lib.rs falls back to QuickJS's
  // backtrace of the throw site (any thrown value), and the two knobs that
  // shape every backtrace, `Error.stackTraceLimit` and
  // `Error.prepareStackTrace`, are virtualised: the artifact sees and gets
  // what it set, but whenever it asks for no frames or for its own format,
  // QuickJS still builds frames and calls `tracePrepare`, which records
  // them (`lastTrace`) before handing the artifact its view.
  const ErrorCtor = Error;
  const ErrorStackGet = getOwnDesc(ErrorCtor.prototype, 'stack').get;
  const limitDesc = getOwnDesc(ErrorCtor, 'stackTraceLimit');
  const prepareDesc = getOwnDesc(ErrorCtor, 'prepareStackTrace');
  const ReflectApplyE = Reflect.apply;
  const ArrSliceE = uncurry(Array.prototype.slice);
  let userLimit = ReflectApplyE(limitDesc.get, ErrorCtor, []);
  let userPrepare = ReflectApplyE(prepareDesc.get, ErrorCtor, []);
  let lastTrace = '';
  function siteText(site) {
    let fn = '', file = '', line = -1, col = -1;
    try { fn = site.getFunctionName(); } catch (e) { }
    try { file = site.getFileName(); } catch (e) { }
    try { line = site.getLineNumber(); } catch (e) { }
    try { col = site.getColumnNumber(); } catch (e) { }
    if (typeof fn !== 'string' || fn === '') fn = '<anonymous>';
    if (typeof file !== 'string' || file === '') return `    at ${fn} (native)\n`;
    return `    at ${fn} (${file}:${line}:${col})\n`;
  }
  function tracePrepare(err, sites) {
    let text = '';
    for (let i = 0; i < sites.length; i++) text += siteText(sites[i]);
    lastTrace = text;
    let n = +userLimit;
    n = n !== n || n < 0 ? 0 : n;
    const visible = ArrSliceE(sites, 0, n);
    if (typeof userPrepare === 'function') return ReflectApplyE(userPrepare, ErrorCtor, [err, visible]);
    text = '';
    for (let i = 0; i < visible.length; i++) text += siteText(visible[i]);
    return text;
  }
  function traceSync() {
    let n = +userLimit;
    const hides = typeof userPrepare === 'function' || n !== n || n < 1;
    try {
      ReflectApplyE(limitDesc.set, ErrorCtor, [hides ? 64 : userLimit]);
      ReflectApplyE(prepareDesc.set, ErrorCtor, [hides ? tracePrepare : undefined]);
    } catch (e) { }
  }
  defineProp(ErrorCtor, 'stackTraceLimit', {
    get() { return userLimit; },
    set(v) { userLimit = v; traceSync(); },
    enumerable: limitDesc.enumerable, configurable: true,
  });
  defineProp(ErrorCtor, 'prepareStackTrace', {
    get() { return userPrepare; },
    set(v) { userPrepare = v; traceSync(); },
    enumerable: prepareDesc.enumerable, configurable: true,
  });
  // The [[ErrorData]] stack of a genuine Error, whatever the artifact did to
  // its `stack` property; '' otherwise.
  function internalStack(e) {
    try {
      const s = ReflectApplyE(ErrorStackGet, e, []);
      return typeof s === 'string' ? s : '';
    } catch (x) { return ''; }
  }

  // ------------------------------------------------------------ guest helpers

  function typeName(v) {
    if (v === null) return 'null';
    const t = typeof v;
    if (t !== 'object' && t !== 'function') return t;
    try { return getCtorName(v) || 'Object'; } catch (e) { return 'Object'; }
  }

  // Describe a thrown value for the guest-error record.
  function describe(e) {
    if (isError(e)) {
      let ctorName = null;
      try { ctorName = getCtorName(e); } catch (x) { }
      const p = errorParts(e);
      let cls = typeof p.name === 'string' && p.name !== '' ? p.name : 'Error';
      if (ctorName !== null && cls === 'Error') cls = ctorName;
      const message = p.message === undefined ? '' : safeString(p.message);
      let stack = internalStack(e);
      if (stack === '' && typeof p.stack === 'string') stack = p.stack;
      return [StrToWellFormed(cls), StrToWellFormed(message), StrToWellFormed(stack), StrToWellFormed(lastTrace)];
    }
    return [typeName(e), StrToWellFormed(safeString(e)), '', StrToWellFormed(lastTrace)];
  }

  // The artifact's top-level variables, for the error report: global
  // properties that were not there before the artifact ran (var, function,
  // implicit globals) plus the top-level let/const/class names declared at
  // the start of a source line, read with an indirect eval (which sees the
  // global lexical scope). Functions and classes are left out. Runs only
  // when an error is being reported. Returns [[name, type, preview], ...].
  // Called with `null` once the stdlib and init script have run, so that
  // what they defined (`kernel`) counts as built in.
  let builtinGlobals = new Set(ownNames(globalThis));
  const IndirectEval = eval;
  const RegExpExec = uncurry(RegExp.prototype.exec);
  const SetHas = uncurry(Set.prototype.has);
  const SetAdd = uncurry(Set.prototype.add);
  function snapshotGlobals(source) {
    if (source === null) {
      builtinGlobals = new Set(ownNames(globalThis));
      return [];
    }
    const out = [];
    const names = new Set();
    const own = ownNames(globalThis);
    for (let i = 0; i < own.length; i++) {
      if (!SetHas(builtinGlobals, own[i])) SetAdd(names, own[i]);
    }
    if (typeof source === 'string') {
      const decl = /^(?:let|const|var|class)\s+([A-Za-z_$][\w$]*)/gm;
      let m;
      while ((m = RegExpExec(decl, source)) !== null && names.size < 200) SetAdd(names, m[1]);
    }
    for (const name of names) {
      if (out.length >= 50) break;
      let value;
      try {
        value = IndirectEval(name);
      } catch (e) {
        continue; // not initialised yet (temporal dead zone) or not a binding
      }
      const t = typeof value;
      if (t === 'function') continue;
      let preview;
      try {
        preview = inspect(value, { depth: 1 });
      } catch (e) {
        preview = '[uninspectable]';
      }
      if (preview.length > 200) preview = StrSlice(preview, 0, 197) + '...';
      ArrPush(out, [StrToWellFormed(name), t === 'object' ? typeName(value) : t, StrToWellFormed(preview)]);
    }
    return out;
  }

  return { inspect, describe, timerWait, timerFire, globals: snapshotGlobals };
})
