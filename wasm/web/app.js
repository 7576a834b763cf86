// The page: hands files to worker.js and draws what it reports.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const COLS = 160, ROWS = 32;  // map grid: COLS * ROWS bins (worker.js MAP_BINS)
  const KINDS = [
    { key: 'data', label: 'data', colour: '--data' },
    { key: 'compressed', label: 'compressed', colour: '--compressed' },
    { key: 'zero', label: 'zero', colour: '--zero' },
    { key: 'unallocated', label: 'unallocated', colour: '--unallocated' },
  ];
  const worker = new Worker('worker.js');
  let current = null;   // {files, top, name, info}: the files given, the image's name, its info
  let downloadUrl = null;

  function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }
  function bytes(n) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let i = 0, v = n;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; ++i; }
    return (i ? v.toFixed(v < 10 ? 2 : 1).replace(/\.0+$/, '') : v) + ' ' + units[i];
  }
  function bytesExact(n) { return bytes(n) + (n >= 1024 ? ' (' + n.toLocaleString('en') + ' bytes)' : ''); }
  function el(tag, props, children) {
    const e = document.createElement(tag);
    const { dataset, ...rest } = props || {};
    Object.assign(e, rest);
    Object.assign(e.dataset, dataset || {});
    for (const c of children || []) e.append(c);
    return e;
  }
  // `canAdd`: the error is about a file the user can still give (a
  // backing file), so the error offers to add files.
  function showError(message, canAdd) {
    $('error-text').textContent = message;
    $('error-add-files').hidden = !canAdd;
    $('error').hidden = !message;
  }

  // ---- opening ----
  // Every file the user gave goes to the worker: the image is one of them,
  // the others are what it may name (a backing file is read only from
  // these, by name). `top`: the image's name, when already known.
  function openFiles(files, top) {
    if (!files.length) return;
    showError('');
    $('result').hidden = true;
    $('download').hidden = true;
    $('progress').hidden = true;
    current = { files, top };
    worker.postMessage({ type: 'open', files, top, format: $('read-as').value || undefined });
  }
  // Read the same files as another format (a fixed VHD is not found by content).
  $('read-as').addEventListener('change', () => { if (current) openFiles(current.files, current.top); });
  // More files for the image open now (or that failed to open): same-named
  // ones replace the earlier ones.
  function addFiles(more) {
    if (!current || !more.length) return openFiles(more);
    const names = new Set(more.map((f) => f.name));
    openFiles(current.files.filter((f) => !names.has(f.name)).concat(more), current.top);
  }
  for (const id of ['add-files', 'error-add-files'])
    $(id).addEventListener('click', () => $('add-picker').click());
  $('add-picker').addEventListener('change', (e) => { addFiles([...e.target.files]); e.target.value = ''; });
  $('pick').addEventListener('click', () => $('picker').click());
  $('picker').addEventListener('change', (e) => { openFiles([...e.target.files]); e.target.value = ''; });
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    openFiles([...e.dataTransfer.files]);
  });

  // ---- info ----
  // What each of qemu-img's format names is better known as.
  const KNOWN_AS = { vpc: 'VHD (Virtual PC, Hyper-V, Azure)', vdi: 'VDI (VirtualBox)', vmdk: 'VMDK (VMware)',
                     vhdx: 'VHDX (Hyper-V)', qcow: 'QEMU qcow version 1' };
  function renderInfo(info, size) {
    const rows = [['Format', info.format]];
    if (KNOWN_AS[info.format]) rows.push(['Known as', KNOWN_AS[info.format]]);
    rows.push(['Virtual size', bytesExact(info.virtualSize)], ['File size', bytesExact(size)]);
    if (info.format === 'qcow2') {
      rows.push(['Version', info.version + ' (compat ' + info.compat + ')']);
      rows.push(['Cluster size', bytesExact(info.clusterSize)]);
      rows.push(['Refcount bits', String(info.refcountBits)]);
      rows.push(['Compression type', info.compressionType]);
      const tags = [];
      if (info.lazyRefcounts) tags.push('lazy refcounts');
      if (info.extendedL2) tags.push('extended L2');
      if (info.dirty) tags.push('dirty');
      if (info.corrupt) tags.push('corrupt');
      if (info.bitmaps.length) tags.push(info.bitmaps.length + ' bitmap' + (info.bitmaps.length > 1 ? 's' : ''));
      if (info.dataFile) tags.push('external data file');
      rows.push(['Features', tags.length ? tags.map((t) => el('span', { className: 'tag', textContent: t })) : 'none']);
      rows.push(['Backing file', info.backingFile
        ? info.backingFile + (info.backingFormat ? ' (' + info.backingFormat + ')' : '') + ' — read from the file of that name you gave'
        : 'none']);
      if (info.dataFile) rows.push(['Data file', info.dataFile]);
    } else if (info.clusterSize) {
      rows.push(['Cluster size', bytesExact(info.clusterSize)]);
    }
    // qemu-img's "Format specific information", in its order and spelling.
    const specific = info.formatSpecific;
    if (specific) for (const key of specific.order) rows.push([key, String(specific.data[key])]);
    if (current.files.length > 1)
      rows.push(['Files given', current.files.map((f) => f.name).join(', ')]);
    const table = $('info');
    table.replaceChildren(...rows.map(([k, v]) =>
      el('tr', {}, [el('th', { textContent: k }), el('td', {}, Array.isArray(v) ? v : [v])])));
    const snaps = info.snapshots || [];
    $('snapshots').replaceChildren(snaps.length
      ? el('ul', { className: 'snaps' }, snaps.map((s) => el('li', {
          textContent: s.name + ' (id ' + s.id + ', ' + new Date(s.dateSec * 1000).toISOString().slice(0, 19).replace('T', ' ') +
                       ', vm state ' + bytes(s.vmStateSize) + ')' })))
      : (info.format === 'qcow2' ? 'none' : 'not applicable'));
    // Any snapshot can be converted instead of the current state.
    $('convert-snapshot').replaceChildren(el('option', { value: '', textContent: 'the current state' }),
      ...snaps.map((s) => el('option', { value: s.id, textContent: 'snapshot ' + s.name + ' (id ' + s.id + ')' })));
    $('snapshot-choice').hidden = snaps.length === 0;
    $('check').replaceChildren(el('span', { className: 'badge pending', textContent: 'checking…' }));
  }

  function renderCheck(report, format) {
    const box = $('check');
    if (!report) {
      if (format === 'raw') {
        box.replaceChildren(el('span', { className: 'badge na', textContent: 'no metadata to check (raw)' }));
      } else {
        box.replaceChildren(el('span', { className: 'badge na', textContent: 'not checked' }),
          el('p', { className: 'muted', textContent: 'This page checks qcow2 images. A ' + format +
                    ' image\'s tables are validated as they are read: a damaged one fails with a message.' }));
      }
      return;
    }
    const verdict = report.corruptions ? ['corrupt', report.corruptions + ' corruption' + (report.corruptions > 1 ? 's' : '')]
                  : report.leaks ? ['leaks', report.leaks + ' leaked cluster' + (report.leaks > 1 ? 's' : '')]
                  : ['clean', 'clean'];
    const facts = [['Corruptions', report.corruptions], ['Leaks', report.leaks],
                   ['Allocated clusters', report.allocatedClusters + ' of ' + report.totalClusters],
                   ['Compressed clusters', report.compressedClusters],
                   ['Fragmented', report.fragmentedClusters], ['Image end', bytes(report.imageEndOffset)]];
    box.replaceChildren(el('span', { className: 'badge ' + verdict[0], textContent: verdict[1] }),
      el('dl', {}, facts.flatMap(([k, v]) => [el('dt', { textContent: k }), el('dd', { textContent: String(v) })])));
    if (report.messages.length)
      box.append(el('p', { className: 'muted', textContent: report.messages.slice(0, 3).join(' · ') }));
  }

  // ---- map ----
  function renderMap(summary) {
    const canvas = $('map');
    // The canvas matches its on-screen size in device pixels; cell edges
    // are snapped to whole pixels so the grid looks even.
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(canvas.parentElement.clientWidth * dpr) - Math.round(40 * dpr);
    const cw = canvas.width / COLS;
    canvas.height = Math.round(cw * ROWS);
    canvas.style.width = (canvas.width / dpr) + 'px';
    const ctx = canvas.getContext('2d');
    const ch = canvas.height / ROWS;
    const colours = Object.fromEntries(KINDS.map((k) => [k.key, css(k.colour)]));
    ctx.fillStyle = css('--card') || '#fff';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    for (let i = 0; i < summary.bins; ++i) {
      // A bin takes the colour of whatever holds most of it.
      let best = null, most = 0;
      for (const k of KINDS) if (summary[k.key][i] > most) { most = summary[k.key][i]; best = k.key; }
      if (!best) continue;  // past the end of a small image
      ctx.fillStyle = colours[best];
      const col = i % COLS, row = Math.floor(i / COLS);
      const x = Math.round(col * cw), y = Math.round(row * ch);
      ctx.fillRect(x, y, Math.round((col + 1) * cw) - x - 1, Math.round((row + 1) * ch) - y - 1);
    }
    const total = KINDS.reduce((s, k) => s + summary.totals[k.key], 0) || 1;
    $('legend').replaceChildren(...KINDS.map((k) => el('li', { dataset: { kind: k.key } }, [
      el('span', { className: 'swatch', style: 'background:' + colours[k.key] }),
      el('span', { textContent: k.label }),
      el('span', { className: 'pct', textContent: (100 * summary.totals[k.key] / total).toFixed(1) + '%' })])));
  }

  // ---- convert ----
  const form = $('convert-form');
  function syncForm() { form.classList.toggle('raw', form.elements.to.value !== 'qcow2'); }
  form.addEventListener('change', syncForm);
  syncForm();
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (!current) return;
    const to = form.elements.to.value;
    const base = current.name.replace(/\.(qcow2|qcow|img|raw|bin|vmdk|vhd|vpc|vdi|vhdx)$/i, '');
    const snapshot = $('convert-snapshot').value;
    // The extension people expect; ".converted" when it would be the source's own name.
    const ext = '.' + to;
    const same = current.name.toLowerCase() === (base + ext).toLowerCase() && !snapshot;
    const name = base + (snapshot ? '.snapshot-' + snapshot : '') + (same ? '.converted' : '') + ext;
    $('convert').disabled = true;
    $('cancel').hidden = false;
    current.convertStart = performance.now();
    $('download').hidden = true;
    setProgress(0, 0);
    $('progress').hidden = false;
    const params = new URLSearchParams(location.search);  // ?workers=N&parallelFrom=BYTES
    const request = { type: 'convert', to, name, snapshot: snapshot || undefined,
                      compress: to === 'qcow2' && $('compress').checked,
                      clusterSize: Number($('cluster-size').value),
                      workers: Number(params.get('workers')) || undefined,
                      parallelFrom: params.has('parallelFrom') ? Number(params.get('parallelFrom')) : undefined };
    if (to === 'qcow2' && $('stream').checked && navigator.serviceWorker.controller) {
      startStreamedDownload(request).catch((e) => { convertDone(); showError(e.message); });
    } else {
      worker.postMessage(request);
    }
  });
  // Save while converting: the service worker (sw.js) is given one end of a
  // channel and serves download/ID/NAME from it; the conversion worker gets
  // the other end and posts the image's bytes into it as it makes them.
  async function startStreamedDownload(request) {
    const channel = new MessageChannel();
    const id = Date.now().toString(36) + Math.random().toString(36).slice(2);
    const registered = new Promise((resolve, reject) => {
      channel.port2.onmessage = resolve;
      setTimeout(() => reject(new Error('the page\'s service worker did not answer: reload the page, ' +
                                        'or untick "save while converting"')), 10000);
    });
    navigator.serviceWorker.controller.postMessage({ type: 'download', id, name: request.name }, [channel.port1]);
    await registered;
    channel.port2.onmessage = null;
    worker.postMessage({ ...request, stream: true, port: channel.port2 }, [channel.port2]);
    const frame = el('iframe', { hidden: true, src: 'download/' + encodeURIComponent(id) + '/' + encodeURIComponent(request.name) });
    document.body.append(frame);
    setTimeout(() => frame.remove(), 60000);  // the download carries on without it
  }
  function syncStreamChoice() {
    const on = 'serviceWorker' in navigator && !!navigator.serviceWorker.controller;
    $('stream').disabled = !on;
    if (!on) $('stream').checked = false;
  }
  if ('serviceWorker' in navigator) navigator.serviceWorker.addEventListener('controllerchange', syncStreamChoice);
  syncStreamChoice();
  $('cancel').addEventListener('click', () => worker.postMessage({ type: 'cancel' }));
  function setProgress(done, total) {
    const pct = total ? (100 * done / total) : 0;
    $('progress').querySelector('.bar').style.width = pct + '%';
    $('progress').querySelector('.label').textContent = total
      ? pct.toFixed(0) + '%  ·  ' + bytes(done) + ' of ' + bytes(total) : 'starting…';
  }
  function convertDone() { $('convert').disabled = false; $('cancel').hidden = true; }
  async function offerDownload(msg) {
    const seconds = (performance.now() - current.convertStart) / 1000;
    if (msg.streamed) {
      $('download').replaceChildren(el('span', { id: 'streamed', textContent: 'Saved ' + msg.name + ' as it was made' }),
        ' ', el('span', { className: 'muted', textContent: '(' + bytes(msg.size) + '; ' + seconds.toFixed(1) + ' s)' }));
      $('download').hidden = false;
      return;
    }
    let file;
    if (msg.bytes) {
      file = new Blob([msg.bytes]);
    } else {
      const root = await navigator.storage.getDirectory();
      const dir = await root.getDirectoryHandle(msg.dir);
      file = await (await dir.getFileHandle(msg.name)).getFile();
    }
    if (downloadUrl) URL.revokeObjectURL(downloadUrl);
    downloadUrl = URL.createObjectURL(file);
    const link = el('a', { id: 'download-link', href: downloadUrl, download: msg.name, textContent: 'Download ' + msg.name });
    link.dataset.workers = msg.workers;
    // For benchmarks: the seconds the page shows, on its own clock (a test
    // harness polling for this link notices it later).
    link.dataset.seconds = seconds.toFixed(3);
    // For tests and benchmarks: how much of the data the read-ahead served.
    if (msg.readAhead) {
      link.dataset.readAheadServed = msg.readAhead.servedBytes;
      link.dataset.readAheadMissed = msg.readAhead.missedBytes;
      link.dataset.readAheadRestarts = msg.readAhead.restarts;
    }
    const rate = current.info.virtualSize / Math.max(seconds, 0.001);
    const workers = msg.workers > 1 ? ', ' + msg.workers + ' workers' : '';
    $('download').replaceChildren(link, ' ', el('span', { className: 'muted',
      textContent: '(' + bytes(msg.size) + '; converted in ' + seconds.toFixed(1) + ' s, ' + bytes(rate) + '/s' + workers + ')' }));
    $('download').hidden = false;
  }

  worker.onmessage = (event) => {
    const msg = event.data;
    switch (msg.type) {
      case 'info':
        current.info = msg.info;
        current.top = current.name = msg.name;
        $('file-name').textContent = msg.name;
        renderInfo(msg.info, msg.size);
        form.elements.to.value = msg.info.format === 'raw' ? 'qcow2' : 'raw';
        syncForm();
        $('result').hidden = false;
        break;
      case 'map': renderMap(msg.summary); break;
      case 'check': renderCheck(msg.report, msg.format); break;
      case 'open-error':
        current.top = msg.name;
        showError(msg.message + (msg.errno ? ' (' + msg.errno + ')' : ''),
                  msg.errno === 'ENOENT' || msg.errno === 'EPERM');
        break;
      case 'check-error':
        $('check').replaceChildren(el('span', { className: 'badge corrupt', textContent: 'check failed' }),
                                   el('p', { className: 'muted', textContent: msg.message }));
        break;
      case 'map-error': showError('Map: ' + msg.message); break;
      case 'progress': setProgress(msg.done, msg.total); break;
      case 'converted': convertDone(); offerDownload(msg).catch((e) => showError(e.message)); break;
      case 'cancelled': convertDone(); $('progress').hidden = true; break;
      case 'error': convertDone(); showError(msg.message + (msg.errno ? ' (' + msg.errno + ')' : '')); break;
    }
  };
  worker.onerror = (e) => showError('The worker failed: ' + e.message);

  // Offline use: cache the page and the module once loaded.
  if ('serviceWorker' in navigator && location.protocol !== 'file:')
    navigator.serviceWorker.register('sw.js').catch(() => { /* the page still works online */ });
})();
