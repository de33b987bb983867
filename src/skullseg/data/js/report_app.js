// skullseg report viewer: slice viewer (2D canvas) and 3D mesh view (three.js, inlined).
// Everything it needs is in the page: the JSON block #skullseg-data holds the volumes, the
// meshes and the three.js sources, zlib-compressed and base64-encoded. No network access.

const DATA = JSON.parse(document.getElementById("skullseg-data").textContent);
const status = document.getElementById("viewer-status");

function b64bytes(s) {
  if (typeof Uint8Array.fromBase64 === "function") return Uint8Array.fromBase64(s);
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

async function decode(field) {
  const raw = b64bytes(field.b64);
  if (!field.zlib) return raw;
  const stream = new Blob([raw]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const decodeText = async (field) => new TextDecoder().decode(await decode(field));
const jsUrl = (text) => URL.createObjectURL(new Blob([text], { type: "text/javascript" }));

// ---------------------------------------------------------------------------- slice viewer
async function setupSlices() {
  const vol = DATA.volume;
  const [nx, ny, nz] = vol.shape;
  const [sx, sy, sz] = vol.spacing;
  const image = await decode(vol.image);
  const labels = await decode(vol.labels);
  const lut = new Float32Array(256 * 4); // r, g, b, weight
  for (const [value, info] of Object.entries(vol.label_table)) {
    const h = info.color;
    lut.set([parseInt(h.slice(1, 3), 16), parseInt(h.slice(3, 5), 16),
      parseInt(h.slice(5, 7), 16), info.weight], Number(value) * 4);
  }
  const pos = vol.start.slice(); // current slice index along x, y, z
  const opacity = document.getElementById("opacity");
  const crosshair = document.getElementById("crosshair");
  const at = (i, j, k) => (i * ny + j) * nz + k;
  // radiological: subject's right on the viewer's left; sagittal: anterior on the right
  const views = [
    { name: "axial", axis: 2, w: nx, h: ny, cw: sx, ch: sy,
      idx: (c, r, s) => at(nx - 1 - c, ny - 1 - r, s), cr: () => [nx - 1 - pos[0], ny - 1 - pos[1]],
      set: (c, r) => { pos[0] = nx - 1 - c; pos[1] = ny - 1 - r; }, marks: ["R", "L", "A", "P"] },
    { name: "coronal", axis: 1, w: nx, h: nz, cw: sx, ch: sz,
      idx: (c, r, s) => at(nx - 1 - c, s, nz - 1 - r), cr: () => [nx - 1 - pos[0], nz - 1 - pos[2]],
      set: (c, r) => { pos[0] = nx - 1 - c; pos[2] = nz - 1 - r; }, marks: ["R", "L", "S", "I"] },
    { name: "sagittal", axis: 0, w: ny, h: nz, cw: sy, ch: sz,
      idx: (c, r, s) => at(s, c, nz - 1 - r), cr: () => [pos[1], nz - 1 - pos[2]],
      set: (c, r) => { pos[1] = c; pos[2] = nz - 1 - r; }, marks: ["P", "A", "S", "I"] },
  ];
  const n = [nx, ny, nz];
  for (const v of views) {
    v.canvas = document.getElementById(`slice-${v.name}`);
    v.slider = document.getElementById(`slider-${v.name}`);
    v.text = document.getElementById(`pos-${v.name}`);
    v.slider.max = n[v.axis] - 1;
    v.off = document.createElement("canvas");
    v.off.width = v.w;
    v.off.height = v.h;
    v.pixels = v.off.getContext("2d").createImageData(v.w, v.h);
    // display size: fit the physical aspect ratio into the canvas box
    const box = 300;
    const scale = box / Math.max(v.w * v.cw, v.h * v.ch);
    const dpr = window.devicePixelRatio || 1;
    v.canvas.style.width = `${Math.round(v.w * v.cw * scale)}px`;
    v.canvas.style.height = `${Math.round(v.h * v.ch * scale)}px`;
    v.canvas.width = Math.round(v.w * v.cw * scale * dpr);
    v.canvas.height = Math.round(v.h * v.ch * scale * dpr);
  }
  function draw(v) {
    const s = pos[v.axis];
    const a = Number(opacity.value) / 100;
    const px = v.pixels.data;
    let o = 0;
    for (let r = 0; r < v.h; r++) {
      for (let c = 0; c < v.w; c++, o += 4) {
        const i = v.idx(c, r, s);
        const g = image[i];
        const l = labels[i] * 4;
        const t = a * lut[l + 3];
        px[o] = g + t * (lut[l] - g);
        px[o + 1] = g + t * (lut[l + 1] - g);
        px[o + 2] = g + t * (lut[l + 2] - g);
        px[o + 3] = 255;
      }
    }
    v.off.getContext("2d").putImageData(v.pixels, 0, 0);
    const ctx = v.canvas.getContext("2d");
    const W = v.canvas.width, H = v.canvas.height;
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(v.off, 0, 0, W, H);
    if (crosshair.checked) {
      const [c, r] = v.cr();
      ctx.strokeStyle = "rgba(255, 220, 0, 0.6)";
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(((c + 0.5) * W) / v.w, 0); ctx.lineTo(((c + 0.5) * W) / v.w, H);
      ctx.moveTo(0, ((r + 0.5) * H) / v.h); ctx.lineTo(W, ((r + 0.5) * H) / v.h);
      ctx.stroke();
    }
    ctx.fillStyle = "#ffd24d";
    ctx.font = `${Math.round(12 * (window.devicePixelRatio || 1))}px sans-serif`;
    const m = 4;
    ctx.textBaseline = "middle";
    ctx.textAlign = "left"; ctx.fillText(v.marks[0], m, H / 2);
    ctx.textAlign = "right"; ctx.fillText(v.marks[1], W - m, H / 2);
    ctx.textAlign = "center";
    ctx.textBaseline = "top"; ctx.fillText(v.marks[2], W / 2, m);
    ctx.textBaseline = "bottom"; ctx.fillText(v.marks[3], W / 2, H - m);
    v.slider.value = s;
    v.text.textContent = `${s + 1} / ${n[v.axis]}`;
  }
  const drawAll = () => views.forEach(draw);
  for (const v of views) {
    v.slider.addEventListener("input", () => { pos[v.axis] = Number(v.slider.value); drawAll(); });
    v.canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      const step = e.deltaY > 0 ? -1 : 1;
      pos[v.axis] = Math.min(n[v.axis] - 1, Math.max(0, pos[v.axis] + step));
      drawAll();
    }, { passive: false });
    v.canvas.addEventListener("click", (e) => {
      const rect = v.canvas.getBoundingClientRect();
      const c = Math.floor(((e.clientX - rect.left) / rect.width) * v.w);
      const r = Math.floor(((e.clientY - rect.top) / rect.height) * v.h);
      v.set(Math.min(v.w - 1, Math.max(0, c)), Math.min(v.h - 1, Math.max(0, r)));
      drawAll();
    });
  }
  opacity.addEventListener("input", drawAll);
  crosshair.addEventListener("change", drawAll);
  drawAll();
}

// ---------------------------------------------------------------------------- 3D view
function srgbToLinear(c) {
  return c <= 0.04045 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
}

async function loadThree() {
  const core = jsUrl(await decodeText(DATA.libs.core));
  const mod = jsUrl((await decodeText(DATA.libs.module))
    .replaceAll('"./three.core.min.js"', JSON.stringify(core)));
  const orbit = jsUrl((await decodeText(DATA.libs.orbit))
    .replace(/from\s*(['"])three\1/g, `from ${JSON.stringify(mod)}`));
  const THREE = await import(mod);
  const { OrbitControls } = await import(orbit);
  return { THREE, OrbitControls };
}

async function setup3d() {
  const canvas = document.getElementById("view3d");
  const probe = document.createElement("canvas").getContext("webgl2");
  probe?.getExtension("WEBGL_lose_context")?.loseContext();
  if (!probe) {
    document.getElementById("view3d-note").textContent =
      "The 3D view needs WebGL 2, which this browser does not provide.";
    return;
  }
  const { THREE, OrbitControls } = await loadThree();
  const renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(window.devicePixelRatio || 1);
  const width = canvas.clientWidth, height = canvas.clientHeight;
  renderer.setSize(width, height, false);
  renderer.setClearColor(0x111418);
  const scene = new THREE.Scene();
  const camera = new THREE.PerspectiveCamera(30, width / height, 1, 10000);
  camera.up.set(0, 0, 1); // world RAS: z is superior
  scene.add(camera);
  scene.add(new THREE.HemisphereLight(0xffffff, 0x404040, 1.2));
  const light = new THREE.DirectionalLight(0xffffff, 2.0);
  light.position.set(0.3, 0.5, 1);
  camera.add(light);
  const box = new THREE.Box3();
  const toggles = document.getElementById("mesh-toggles");
  const objects = [];
  for (const m of DATA.meshes) {
    const geom = new THREE.BufferGeometry();
    const q = new Uint16Array((await decode(m.vertices)).buffer);
    const verts = new Float32Array(q.length);
    for (let i = 0; i < q.length; i++) verts[i] = m.offset[i % 3] + q[i] * m.scale[i % 3];
    geom.setAttribute("position", new THREE.BufferAttribute(verts, 3));
    geom.setIndex(new THREE.BufferAttribute(new Uint32Array((await decode(m.faces)).buffer), 1));
    geom.computeVertexNormals();
    const opaque = m.opacity >= 1;
    const mat = new THREE.MeshLambertMaterial({
      color: m.values ? 0xffffff : new THREE.Color(m.color),
      transparent: !opaque, opacity: m.opacity, depthWrite: opaque,
      side: opaque ? THREE.DoubleSide : THREE.FrontSide,
    });
    if (m.values) {
      const rgb = await decode(m.values);
      const col = new Float32Array(rgb.length);
      for (let i = 0; i < rgb.length; i++) col[i] = srgbToLinear(rgb[i] / 255);
      geom.setAttribute("color", new THREE.BufferAttribute(col, 3));
      mat.vertexColors = true;
    }
    const mesh = new THREE.Mesh(geom, mat);
    mesh.renderOrder = opaque ? 0 : 1;
    scene.add(mesh);
    objects.push(mesh);
    geom.computeBoundingBox();
    box.union(geom.boundingBox);
    const label = document.createElement("label");
    const cb = document.createElement("input");
    cb.type = "checkbox";
    cb.checked = m.visible;
    mesh.visible = m.visible;
    cb.addEventListener("change", () => { mesh.visible = cb.checked; render(); });
    label.append(cb, ` ${m.name} (${m.n_faces.toLocaleString()} triangles)`);
    toggles.append(label);
  }
  const centre = box.getCenter(new THREE.Vector3());
  const size = box.getSize(new THREE.Vector3());
  const radius = Math.max(size.x, size.y, size.z, 1) * 0.6;
  const controls = new OrbitControls(camera, canvas);
  function resetView() {
    const dir = new THREE.Vector3(0.55, 1.0, 0.35).normalize(); // from the front right, above
    const dist = radius / Math.sin((camera.fov * Math.PI) / 360);
    camera.position.copy(centre).addScaledVector(dir, dist);
    camera.near = dist / 100;
    camera.far = dist * 10;
    camera.updateProjectionMatrix();
    controls.target.copy(centre);
    controls.update();
  }
  function render() { renderer.render(scene, camera); }
  controls.addEventListener("change", render);
  document.getElementById("reset-view").addEventListener("click", () => { resetView(); render(); });
  window.addEventListener("resize", () => {
    const w = canvas.clientWidth, h = canvas.clientHeight;
    renderer.setSize(w, h, false);
    camera.aspect = w / h;
    camera.updateProjectionMatrix();
    render();
  });
  resetView();
  render();
}

// ---------------------------------------------------------------------------- start
async function main() {
  const t0 = performance.now();
  const errors = [];
  for (const [name, step] of [["slice viewer", setupSlices], ["3D view", setup3d]]) {
    try {
      await step();
    } catch (err) {
      errors.push(`${name}: ${err}`);
      console.error(`skullseg report: ${name} failed`, err);
    }
  }
  window.__reportLoadMs = performance.now() - t0;
  status.textContent = errors.length ? `Viewer problems: ${errors.join("; ")}` : "";
  status.className = errors.length ? "warn" : "";
  window.__reportErrors = errors;
  window.__reportReady = true;
}

main();
