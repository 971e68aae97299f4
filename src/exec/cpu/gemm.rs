//! Conv as GEMM: per (image, group), `C[m x p] = A[m x k] * B[k x p]` with A the
//! pre-packed weights, C the NCHW output, and B in one of three forms:
//!
//! * **pointwise** (1x1, stride 1, no padding): B is the input as it lies, row `k` =
//!   input plane `k`. No copy at all. No hardware prefetcher follows K rows a plane
//!   apart, so the tiles ask for each row a few steps ahead (`simd::PREFETCH_STEPS`).
//! * **direct** (most other convs): B rows are constant shifts of a padded, phase-split
//!   copy of the input rows a work item needs (`direct.rs`): one copy of the input
//!   instead of `kh * kw` of them.
//! * **im2col** (where the direct grid would waste more columns than packing costs:
//!   large `m` on small maps): B blocks packed per cache block (`pack.rs`).
//! * **channels**: the pointwise or direct B with the tile turned round (output channels
//!   in the vector lanes, pixels broadcast, `kernels/ctile.rs`), where pixel panels would
//!   waste more lanes than its transposed store costs: 7x7 and 14x14 maps
//!   (`run_channels`).
//!
//! Loop nest of one work item (A micro-panel reused from L1/L2 across the B panels,
//! B panels reused from L2 across the A micro-panels):
//!
//! ```text
//! [im2col: for each K block (kc <= 256): pack B[kc x nc]]   [direct: copy input rows]
//!   for each A micro-panel (mr rows of the item's channel chunk):
//!     for each B panel (nr pixels of the item's pixel block):
//!       micro-kernel -> C tile, bias + activation fused into the last store
//! ```
//!
//! A work item is (image, group, pixel block, output-channel chunk). Batch 16 has enough
//! images for every thread; at batch 1 the pixels are cut into blocks, and where that is
//! still too few items (7x7 maps) the output channels are cut too; the chunks of one pixel
//! block then read one grid copy, made before the items run (`Common::share_grids`).
//!
//! The channel tile on the direct grid also runs on blocked tensors (`Call::layouts`,
//! `blocked.rs`): a blocked input gets a blocked grid (`Grid::blocked`), and a blocked
//! output takes the tile's vectors as they are (no transpose).

use super::blocked::{Layouts, BLOCK};
use super::direct::{Grid, PadJob, ScatterJob};
use super::kernels::{CTile, KernelSet, Tile, TransposeJob};
use super::pack::{Geom, PackJob};
use super::scratch::{self, with_scratch, with_sums, AlignedBuf};
use super::threads::{share, SendPtr, Threads};
use super::Epilogue;
use std::sync::{Mutex, OnceLock};

/// Most K rows per im2col block: an AVX-512 A micro-panel of 12 x 256 floats (12 KiB)
/// stays in L1 while it sweeps the B block.
const KC_MAX: usize = 256;
/// Floats of B one item works on (an im2col block, the input panels of a pointwise conv,
/// a direct conv's input copy): 512 KiB, inside the 1 MiB L2 per core beside the A
/// panels streaming through.
pub(crate) const B_FLOATS: usize = 128 * 1024;
/// Work items wanted per thread when the natural split gives fewer (load balance).
const ITEMS_PER_THREAD: usize = 4;
/// Largest tile any ISA uses (for the scatter buffer).
const TILE_FLOATS: usize = 12 * 32;
/// The grid copies shared by a call's channel chunks (`Common::share_grids`).
static GRIDS: Mutex<Vec<f32>> = Mutex::new(Vec::new());

/// Weights packed into A panels, group after group.
pub(crate) struct GemmWeights {
    a: AlignedBuf,
    /// Output channels per group (rows of A).
    m: usize,
    /// `in_channels / groups * kh * kw` (columns of A).
    k: usize,
    mr: usize,
    /// The same weights as A^T panels of `nc` channels (`[k][nc]` steps) for the
    /// channel-vectorized tile, packed on first use (most convs never need them).
    channel_panels: OnceLock<AlignedBuf>,
    nc: usize,
    /// The ISA's transpose, which packs the panels.
    transpose: unsafe fn(&TransposeJob),
}

impl GemmWeights {
    /// `weight` is `[groups * m][k]`, packed for the kernels `ks` (A panels of `ks.mr`
    /// rows; the channel tile's, of `ks.nc`, on first use: most convs never need them).
    pub(crate) fn new(weight: &[f32], groups: usize, m: usize, k: usize, ks: &KernelSet) -> GemmWeights {
        let (mr, nc, transpose) = (ks.mr, ks.nc, ks.transpose);
        let mut a = AlignedBuf::default();
        pack_panels(&mut a, weight, groups, m, k, mr, transpose, &Threads::single());
        GemmWeights { a, m, k, mr, channel_panels: OnceLock::new(), nc, transpose }
    }

    /// New weights of the same shape, packed into the buffers these had (the channel
    /// tile's panels too, where they were packed).
    pub(crate) fn repack(&mut self, weight: &[f32], threads: &Threads) {
        let groups = self.a.len() / self.group_len().max(1);
        let (m, k) = (self.m, self.k);
        pack_panels(&mut self.a, weight, groups, m, k, self.mr, self.transpose, threads);
        if let Some(mut at) = self.channel_panels.take() {
            pack_panels(&mut at, weight, groups, m, k, self.nc, self.transpose, threads);
            let _ = self.channel_panels.set(at);
        }
    }

    fn group_len(&self) -> usize {
        self.m.div_ceil(self.mr) * self.k * self.mr
    }

    fn channel_group_len(&self) -> usize {
        self.m.div_ceil(self.nc) * self.k * self.nc
    }

    /// The A^T panels, group after group (from the weights read back, on first use).
    pub(crate) fn channel_panels(&self) -> &[f32] {
        self.channel_panels
            .get_or_init(|| {
                let weight = self.unpacked();
                let groups = weight.len() / (self.m * self.k).max(1);
                let mut at = AlignedBuf::default();
                pack_panels(&mut at, &weight, groups, self.m, self.k, self.nc, self.transpose, &Threads::single());
                at
            })
            .as_slice()
    }

    /// The weights as given (`[groups * m][k]`), read back from the A panels.
    pub(crate) fn unpacked(&self) -> Vec<f32> {
        let (m, k, mr) = (self.m, self.k, self.mr);
        let groups = self.a.len() / self.group_len();
        let a = self.a.as_slice();
        let mut w = vec![0.0; groups * m * k];
        for g in 0..groups {
            let a = &a[g * self.group_len()..];
            for r in 0..m {
                for kk in 0..k {
                    w[(g * m + r) * k + kk] = a[(r / mr * k + kk) * mr + r % mr];
                }
            }
        }
        w
    }

    pub(crate) fn bytes(&self) -> usize {
        (self.a.len() + self.channel_panels.get().map_or(0, AlignedBuf::len)) * 4
    }
}

/// `[groups * m][k]` weights into `out` as panels of `width` rows, group after group, each
/// panel `k` steps of `width` floats (rows past `m` zero): the micro-kernel's A panels
/// (`width = mr`) and the channel tile's A^T panels (`width = nc`) share this layout. The
/// panels are shared out on `threads`, each a transpose of its rows (`transpose`, the
/// ISA's: `kernels/transpose.rs`).
#[allow(clippy::too_many_arguments)]
fn pack_panels(
    out: &mut AlignedBuf,
    weight: &[f32],
    groups: usize,
    m: usize,
    k: usize,
    width: usize,
    transpose: unsafe fn(&TransposeJob),
    threads: &Threads,
) {
    assert_eq!(weight.len(), groups * m * k, "weights of {groups} groups of {m} x {k}");
    let panels = m.div_ceil(width);
    // Every float of every panel is written below; a buffer of the right size is reused.
    if out.len() != groups * panels * k * width {
        *out = AlignedBuf::zeroed(groups * panels * k * width);
    }
    let dst = SendPtr(out.as_mut_slice().as_mut_ptr());
    threads.for_each_run(groups * panels, &|run| {
        for item in run {
            let (g, p) = (item / panels, item % panels);
            let job = TransposeJob {
                src: weight[(g * m + p * width) * k..].as_ptr(),
                src_stride: k,
                rows: width.min(m - p * width),
                cols: k,
                // SAFETY (pointer arithmetic): panel `item` lies inside `out`.
                dst: unsafe { dst.get().add(item * k * width) },
                width,
            };
            // SAFETY: `rows` rows of k floats from row `g * m + p * width` on, all inside
            // `weight`; panel `item` (k * width floats) is written by this item only; the
            // transpose is the ISA's the weights are packed for, which the CPU has.
            unsafe { transpose(&job) };
        }
    });
}

/// How a GEMM conv forms B and orients its tiles (see the module doc of `gemm.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Pointwise,
    Direct,
    Im2col,
    /// Output channels in the vector lanes, pixels broadcast (`kernels/ctile.rs`); B the
    /// input in place (1x1 stride 1) or the direct grid's copy, read only at real pixels.
    Channels,
}

/// Relative cost of the channel tile's transposed store: `TRANSPOSE_K / k` of its FMA time
/// (set when it was `NC * P` scalar moves against `K * P * V` FMAs at two a cycle; the
/// gathers that replaced them cost less, and the first call's timing sees that: `tune.rs`).
const TRANSPOSE_K: f64 = 24.0;
/// Independent FMA chains that hide the FMA latency (4 cycles, 2 pipes): a channel tile of
/// fewer accumulators runs at that fraction of peak.
const FMA_CHAINS: usize = 8;

/// Pick the B form and tile orientation for a conv with `m` output channels per group,
/// by the FMA lanes each issues per useful one.
pub(crate) fn method(g: &Geom, m: usize, ks: &KernelSet) -> Method {
    let nr = ks.nr;
    let pixels = g.pixels() as f64;
    let lanes = |cols: usize| cols.next_multiple_of(nr) as f64 / pixels;
    let grid = Grid::new(*g).filter(|grid| grid.local_len(grid.halo + 2, nr) <= 4 * B_FLOATS);
    let (pixel_method, pixel_cost) = if g.is_pointwise() {
        // B in place walks K rows h*w apart on every tile; the tiles ask for each row
        // ahead (`simd::PREFETCH_STEPS`), so even 3 MiB of input (256 channels at 56x56)
        // reads as fast as a packed copy, without the copy.
        (Method::Pointwise, lanes(g.pixels()))
    } else {
        // Packing one B float costs about one cycle; it feeds m MACs, m / 16 cycles of
        // AVX-512 FMA: im2col's overhead is ~16 / m. The direct grid's is its extra panels.
        let im2col = lanes(g.pixels()) * (1.0 + 16.0 / m as f64);
        match grid {
            Some(grid) if lanes(grid.pixels()) <= im2col => (Method::Direct, lanes(grid.pixels())),
            Some(_) => (Method::Im2col, im2col),
            None => return Method::Im2col,
        }
    };
    // The channel tile (B in place or on the grid, as above) wastes lanes only on a
    // channel count off the vector width, pays for its transposed store, and loses speed
    // on tiles too small to hide FMA latency.
    let (runs, run) = pixel_runs(g);
    let p = ChannelTiles::new(runs, run, !g.is_pointwise() && grid.is_some(), ks).tile(0).n;
    let v = m.min(ks.nc).div_ceil(ks.lanes);
    let latency = (FMA_CHAINS as f64 / (p * v) as f64).max(1.0);
    let channel_cost = m.next_multiple_of(ks.lanes) as f64 / m as f64 * (1.0 + TRANSPOSE_K / g.k() as f64) * latency;
    if channel_cost < pixel_cost {
        Method::Channels
    } else {
        pixel_method
    }
}

/// `method`, unless forced (a forced `Pointwise` only where the input itself is B; the
/// grid-based methods only where the grid exists).
pub(crate) fn choose(g: &Geom, m: usize, ks: &KernelSet, force: Option<Method>) -> Method {
    let no_grid = Grid::new(*g).is_none();
    match force {
        Some(Method::Pointwise) if !g.is_pointwise() => method(g, m, ks),
        Some(Method::Direct) if no_grid => Method::Im2col,
        Some(Method::Channels) if no_grid && !g.is_pointwise() => Method::Im2col,
        Some(forced) => forced,
        None => method(g, m, ks),
    }
}

/// The channel tile's pixels come in runs of consecutive pixels, `(runs, run length)`: in
/// place (1x1 stride 1) all pixels are one run; on the direct grid each output row is one
/// (the grid's gap columns are never read). A run is cut into `run.div_ceil(max)`
/// near-equal tiles (a 7x7 map in place: 10, 10, 10, 10, 9 pixels).
fn pixel_runs(g: &Geom) -> (usize, usize) {
    if g.is_pointwise() {
        (1, g.pixels())
    } else {
        (g.oh, g.ow)
    }
}

/// How one call is cut into work items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    /// K rows per block (im2col; the others take all of K at once).
    kc: usize,
    k_blocks: usize,
    pixel_blocks: usize,
    m_chunks: usize,
}

/// `panel_cost(p)`: floats of B data an item with `p` panels works on; `a_floats`: the
/// group's packed weights.
///
/// Too few (image, group) pairs for the threads (batch 1): cut the pixels into blocks,
/// the output channels into chunks, or both. Each pixel block streams all of A once and
/// each channel chunk prepares its own B, so pick the cut with the least traffic: pixel
/// blocks on large maps, channel chunks on 7x7 maps under megabytes of weights.
#[allow(clippy::too_many_arguments)]
fn plan(
    images_groups: usize,
    k: usize,
    kc: usize,
    panels: usize,
    m_panels: usize,
    threads: usize,
    a_floats: usize,
    panel_cost: impl Fn(usize) -> usize,
) -> Plan {
    let k_blocks = k.div_ceil(kc).max(1);
    // One image cut for the threads under weights many times the B budget (ResNet-50's
    // layer4 at batch 1: 9 MiB of a 3x3 conv's weights, from memory): a second pixel block,
    // streaming them all again, costs more than a B twice the budget read from L2 or L3.
    // 512 -> 512 3x3 stride 2 at 14x14, 2 threads, cold weights: 1.35-1.38 -> 1.10-1.18 ms
    // (its 4-phase grid of all 7 output rows is 590 KB). Batches keep the budget.
    let weight_bound = a_floats >= 8 * B_FLOATS && images_groups < threads;
    let b_budget = if weight_bound { 2 * B_FLOATS } else { B_FLOATS };
    let mut max_panels = 1;
    while max_panels < panels && panel_cost(max_panels + 1) <= b_budget {
        max_panels += 1;
    }
    let mut pixel_blocks = panels.div_ceil(max_panels).max(1);
    let mut m_chunks = 1;
    let want = ITEMS_PER_THREAD * threads;
    if threads > 1 && images_groups * pixel_blocks < want {
        let b_floats = panel_cost(panels);
        let traffic = |pb: usize, mc: usize| pb * a_floats + mc * b_floats;
        let mut best = (usize::MAX, pixel_blocks, 1);
        for pb in pixel_blocks..=panels.min(want.max(pixel_blocks)) {
            let mc = want.div_ceil(images_groups * pb).clamp(1, m_panels);
            let t = traffic(pb, mc);
            if t < best.0 {
                best = (t, pb, mc);
            }
        }
        (pixel_blocks, m_chunks) = (best.1, best.2);
        // Few items: make their count a multiple of the threads so none idles at the end.
        let items = images_groups * pixel_blocks * m_chunks;
        if !items.is_multiple_of(threads) {
            if m_chunks > 1 && m_chunks < m_panels {
                m_chunks = (images_groups * pixel_blocks * m_chunks).next_multiple_of(threads)
                    / (images_groups * pixel_blocks);
                m_chunks = m_chunks.min(m_panels);
            } else if pixel_blocks < panels {
                let step = threads / gcd(threads, images_groups * m_chunks);
                pixel_blocks = pixel_blocks.next_multiple_of(step).min(panels);
            }
        }
    }
    Plan { kc, k_blocks, pixel_blocks, m_chunks }
}

pub(crate) fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Grid rows per plane of the largest of `blocks` pixel blocks (`rows_of(j)`: block `j`'s
/// output rows), halo included: the layout every block's copy shares.
fn largest_block(blocks: usize, halo: usize, rows_of: impl Fn(usize) -> (usize, usize)) -> usize {
    (0..blocks).map(rows_of).map(|(a, b)| b - a + halo).max().unwrap_or(1)
}

/// Where a conv's tiles read their residual: `out` itself (`in_output`), the residual
/// beside it, or null for none. Only ever read through (in the output: each element before
/// the tile writes it).
pub(crate) fn residual_ptr(residual: Option<&[f32]>, in_output: bool, out: &mut [f32]) -> SendPtr {
    match residual {
        _ if in_output => SendPtr(out.as_mut_ptr()),
        Some(r) => SendPtr(r.as_ptr().cast_mut()),
        None => SendPtr(std::ptr::null_mut()),
    }
}

/// B row offsets of a 1x1 stride-1 conv read in place: row `k` is input plane `k`.
pub(crate) fn plane_offsets(k: usize, hw: usize) -> Vec<u32> {
    (0..k).map(|i| u32::try_from(i * hw).expect("input too large")).collect()
}

/// One image's 1x1 stride-1 conv (one group) over pixels `q0 .. q1` of its `hw`-pixel
/// planes `x`, output channels `c0 .. c1` (`c0` on an A micro-panel):
/// `C = act(A * B[:, q0..q1] + bias)` into `c`, output channel `ch` at
/// `c + (ch - c0) * ldc`, pixel `q` at column `q - q0`. On the calling thread; `offsets` are
/// [`plane_offsets`]`(k, hw)` and [`packed_offsets`]`(k, nr)`, `tail` room for one
/// `k x nr` panel. The expansion strip of a fused expansion and depthwise conv (`fused.rs`).
///
/// Safety: `c` holds `c1 - c0` rows of `q1 - q0` floats, `ldc` apart.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn pointwise_strip(
    weights: &GemmWeights,
    ks: &KernelSet,
    (c0, c1): (usize, usize),
    bias: &[f32],
    act: Epilogue,
    x: &[f32],
    (hw, q0, q1): (usize, usize, usize),
    (offsets, packed): (&[u32], &[u32]),
    tail: &mut [f32],
    (c, ldc): (*mut f32, usize),
) {
    let (m, k, mr, nr) = (weights.m, weights.k, weights.mr, ks.nr);
    assert!(q0 <= q1 && q1 <= hw && x.len() == k * hw && offsets.len() == k && packed.len() == k);
    assert!(tail.len() >= k * nr);
    assert_eq!(bias.len(), m);
    assert!(c0.is_multiple_of(mr) && c0 <= c1 && c1 <= m);
    for mp in c0 / mr..c1.div_ceil(mr) {
        for q in (q0..q1).step_by(nr) {
            let n = nr.min(q1 - q);
            // A panel reaching past the plane's end would read past the input's (the last
            // plane's): packed, zero-padded, as `run_pointwise` does.
            let (b, boff) = if q + nr <= hw {
                (x[q..].as_ptr(), offsets.as_ptr())
            } else {
                let g = Geom::pointwise(k, 1, hw);
                let job = PackJob { g, x: x.as_ptr(), k0: 0, kc: k, p0: q, np: n, nr, dst: tail.as_mut_ptr() };
                // SAFETY: `x` is the image's k planes, `tail` holds one k x nr panel.
                unsafe { (ks.pack)(&job) };
                (tail.as_ptr(), packed.as_ptr())
            };
            let tile = Tile {
                kc: k,
                a: weights.a.as_slice()[mp * k * mr..].as_ptr(),
                b,
                boff,
                c: c.add((mp * mr - c0) * ldc + (q - q0)),
                ldc,
                m: mr.min(c1 - mp * mr),
                n,
                accumulate: false,
                finish: true,
                bias: bias[mp * mr..].as_ptr(),
                res: std::ptr::null(),
                act,
            };
            // SAFETY: A panel `mp` has k steps of mr floats; every B row has n pixels at
            // `b + boff[k]`; the C tile is inside `c` (caller).
            unsafe { (ks.tile)(&tile) };
        }
    }
}

/// B row offsets of a packed `k x nr` panel.
pub(crate) fn packed_offsets(k: usize, nr: usize) -> Vec<u32> {
    (0..k).map(|i| u32::try_from(i * nr).expect("panel too large")).collect()
}

/// Floats of one part of a channel tile's A^T panel (`CTile::sums`): 16 KiB, a third of a
/// 48 KiB L1, where the part stays while the tiles of an item (or run) pass over it; a
/// panel over all of K (1024 rows of 32 channels, 128 KiB) streamed from L2 for every
/// tile. ResNet-50 at batch 16, 2 threads: 3% faster with parts of 64, 128 or 256 rows
/// alike (benches/peers/RESULTS.md section 27); one thread, 1024 -> 256 at 14x14: 4%.
const A_PART_FLOATS: usize = 4 * 1024;

/// How a channel tile's K is cut into parts whose A^T rows stay in L1 between tiles, and
/// what each tile brings into L2 meanwhile (`CTile::pf`): a slice of the panel's next part,
/// or of the next panel's first.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KParts {
    k: usize,
    nc: usize,
    /// Pixels of the largest tile (`KernelSet::max_pixels`): the room each tile's sums take.
    max_pixels: usize,
    pub parts: usize,
}

impl KParts {
    pub(crate) fn new(k: usize, ks: &KernelSet) -> KParts {
        KParts { k, nc: ks.nc, max_pixels: ks.max_pixels, parts: (k * ks.nc).div_ceil(A_PART_FLOATS).max(1) }
    }

    /// K rows `k0 .. k1` of part `p`.
    pub(crate) fn rows(&self, p: usize) -> (usize, usize) {
        share(self.k, self.parts, p)
    }

    /// Floats of the running sums of `tiles` tiles (none where K is one part).
    pub(crate) fn sums_len(&self, tiles: usize) -> usize {
        if self.parts > 1 {
            tiles * self.max_pixels * self.nc
        } else {
            0
        }
    }

    /// The running sums of tile `i` in `sums` (`sums_len`), or null where K is one part.
    pub(crate) fn sums_of(&self, sums: &mut [f32], i: usize) -> *mut f32 {
        if self.parts > 1 {
            sums[i * self.max_pixels * self.nc..].as_mut_ptr()
        } else {
            std::ptr::null_mut()
        }
    }

    /// What the `tiles` tiles running part `p` of panel `mp` bring into L2: `1 / tiles` of
    /// the panel's next part each, or past its last part of panel `next`'s first (nothing
    /// where `next == mp`). Computed once a part, outside the tile loop.
    pub(crate) fn prefetch(&self, mp: usize, p: usize, next: usize, tiles: usize) -> PartPrefetch {
        let (k0, k1) = self.rows(p);
        let (panel, part) = if p + 1 < self.parts { (mp, p + 1) } else { (next, 0) };
        let (n0, n1) = self.rows(part);
        let len = (n1 - n0) * self.nc;
        let step = if panel == mp && part == 0 { 0 } else { ((len.div_ceil(tiles) << 16) / (k1 - k0)) as u32 };
        PartPrefetch { at: (panel * self.k + n0) * self.nc, len, tiles, step }
    }
}

/// [`KParts::prefetch`]: tile `i`'s share of `len` floats from `at` in the panels.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PartPrefetch {
    at: usize,
    len: usize,
    tiles: usize,
    /// `CTile::pf_step`.
    pub step: u32,
}

impl PartPrefetch {
    /// `CTile::pf` of tile `i`.
    pub(crate) fn pf(&self, panels: &[f32], i: usize) -> *const f32 {
        panels[self.at + i * self.len / self.tiles..].as_ptr()
    }
}

/// Everything `run` needs about one call.
pub(crate) struct Call<'a> {
    pub weights: &'a GemmWeights,
    pub kernels: KernelSet,
    pub bias: &'a [f32],
    pub act: Epilogue,
    pub groups: usize,
    /// Im2col geometry of one group.
    pub geom: Geom,
    pub images: usize,
    /// Added before the activation, shaped as the output (a residual connection).
    pub residual: Option<&'a [f32]>,
    /// The residual is `out` itself (`residual` is None): each tile reads the residual
    /// under its outputs before it writes them (im2col, whose K blocks store partial sums,
    /// accumulates onto it from the first block).
    pub residual_in_output: bool,
    /// Set by tests to exercise each method on any shape.
    pub force: Option<Method>,
    /// How the input and the output (and the residual) lie: a blocked side runs the
    /// channel tile on the direct grid (one group, channels whole blocks; not 1x1 stride
    /// 1, which `blocked::run_pointwise` takes).
    pub layouts: Layouts,
    /// Floats from one output image to the next, where not `m * pixels` (one group, no
    /// residual): each image's output is a run of a larger tensor's images, as a channel
    /// concat's input is of its output.
    pub out_image: Option<usize>,
}

/// Run the conv over all images into `out`, fully overwritten (with `Call::out_image`, each
/// image's run of it; the floats between untouched).
pub(crate) fn run(call: &Call, input: &[f32], out: &mut [f32], threads: &Threads) {
    let Call { weights, kernels, geom, .. } = *call;
    let (m, k) = (weights.m, weights.k);
    assert_eq!(k, geom.k());
    assert_eq!(input.len(), call.images * call.groups * geom.c * geom.h * geom.w);
    match call.out_image {
        None => assert_eq!(out.len(), call.images * call.groups * m * geom.pixels()),
        Some(stride) => {
            assert!(call.groups == 1 && call.residual.is_none() && !call.residual_in_output, "strided: one group");
            assert!(stride >= m * geom.pixels() && out.len() >= (call.images - 1) * stride + m * geom.pixels());
        }
    }
    assert_eq!(call.bias.len(), call.groups * m);
    assert!(call.residual.is_none_or(|r| r.len() == out.len()));
    assert!(!(call.residual_in_output && call.residual.is_some()), "one residual");
    if call.layouts.any_blocked() {
        assert!(
            call.groups == 1 && !geom.is_pointwise() && Grid::new(geom).is_some(),
            "blocked: the grid's channel tile"
        );
        assert!(!call.layouts.input || geom.c.is_multiple_of(BLOCK), "a blocked input has whole blocks");
        assert!(!call.layouts.output || m.is_multiple_of(BLOCK), "a blocked output has whole blocks");
        return run_channels(call, input, out, threads);
    }
    match choose(&geom, m, &kernels, call.force) {
        Method::Pointwise => run_pointwise(call, input, out, threads),
        Method::Direct => run_direct(call, input, out, threads),
        Method::Im2col => run_im2col(call, input, out, threads),
        Method::Channels => run_channels(call, input, out, threads),
    }
}

/// What every method shares: the item split and the tile loop.
struct Common<'a> {
    call: &'a Call<'a>,
    plan: Plan,
    /// B panels per (image, group).
    panels: usize,
    m_panels: usize,
    /// Output floats per (image, group) and per channel.
    out_group: usize,
    out_plane: usize,
    in_group: usize,
    out: SendPtr,
    /// The residual's start, or null.
    res: SendPtr,
    /// The output (and residual) is blocked (`Call::layouts`).
    blocked_out: bool,
}

/// One item's coordinates.
struct Item {
    img_group: usize,
    group: usize,
    /// Pixel block `pixel_block` of the plan's blocks for this (image, group).
    pixel_block: usize,
    /// Panels `pa .. pb`, A micro-panels `ma .. mb`.
    pa: usize,
    pb: usize,
    ma: usize,
    mb: usize,
}

impl<'a> Common<'a> {
    /// Pixel-tile orientation: A micro-panels of `mr` rows.
    fn new(
        call: &'a Call<'a>,
        out: &mut [f32],
        panels: usize,
        threads: &Threads,
        kc: usize,
        panel_cost: impl Fn(usize) -> usize,
    ) -> Common<'a> {
        let w = call.weights;
        Common::with_rows(call, out, panels, threads, kc, w.mr, w.group_len(), panel_cost)
    }

    /// Channel-tile orientation: A^T panels of `nc` channels.
    fn for_channels(
        call: &'a Call<'a>,
        out: &mut [f32],
        panels: usize,
        threads: &Threads,
        panel_cost: impl Fn(usize) -> usize,
    ) -> Common<'a> {
        let w = call.weights;
        Common::with_rows(call, out, panels, threads, w.k, w.nc, w.channel_group_len(), panel_cost)
    }

    /// `panels` pixel panels (or tiles) and A panels of `rows` rows, `a_floats` per group.
    #[allow(clippy::too_many_arguments)]
    fn with_rows(
        call: &'a Call<'a>,
        out: &mut [f32],
        panels: usize,
        threads: &Threads,
        kc: usize,
        rows: usize,
        a_floats: usize,
        panel_cost: impl Fn(usize) -> usize,
    ) -> Common<'a> {
        let m = call.weights.m;
        let m_panels = m.div_ceil(rows);
        let plan = plan(
            call.images * call.groups,
            call.weights.k,
            kc,
            panels,
            m_panels,
            threads.count(),
            a_floats,
            panel_cost,
        );
        let g = &call.geom;
        Common {
            call,
            plan,
            panels,
            m_panels,
            out_group: call.out_image.unwrap_or(m * g.pixels()),
            out_plane: g.pixels(),
            in_group: g.c * g.h * g.w,
            out: SendPtr(out.as_mut_ptr()),
            res: residual_ptr(call.residual, call.residual_in_output, out),
            blocked_out: call.layouts.output,
        }
    }

    fn items(&self) -> usize {
        self.call.images * self.call.groups * self.plan.pixel_blocks * self.plan.m_chunks
    }

    /// Item `i`: channel chunks vary slowest, so thread `t`'s run of items (`threads.rs`)
    /// is the `t`-th share of the output channels wherever the channels are cut. The
    /// depthwise convs cut by channel too: MobileNetV2's expansion 1x1 and its depthwise
    /// conv then each keep their channels on one core (2 threads: 0.857 -> 0.895 of
    /// onnxruntime's speed, against pixel blocks varying slowest; ResNet-50 0.919 -> 0.931).
    fn item(&self, i: usize) -> Option<Item> {
        let p = &self.plan;
        let per_chunk = self.call.images * self.call.groups * p.pixel_blocks;
        let (mi, rest) = (i / per_chunk, i % per_chunk);
        let (j, img_group) = (rest % p.pixel_blocks, rest / p.pixel_blocks);
        let (pa, pb) = share(self.panels, p.pixel_blocks, j);
        let (ma, mb) = share(self.m_panels, p.m_chunks, mi);
        (pa < pb && ma < mb).then_some(Item {
            img_group,
            group: img_group % self.call.groups,
            pixel_block: j,
            pa,
            pb,
            ma,
            mb,
        })
    }

    /// The group's input planes.
    fn input<'x>(&self, input: &'x [f32], it: &Item) -> &'x [f32] {
        &input[it.img_group * self.in_group..][..self.in_group]
    }

    /// A tile for A micro-panel `mp`, K rows `k0 .. k0 + kc`, writing C at output pixel
    /// `q` (or into `c` with `ldc` when given).
    #[allow(clippy::too_many_arguments)]
    fn tile(
        &self,
        it: &Item,
        mp: usize,
        k0: usize,
        kc: usize,
        b: *const f32,
        boff: *const u32,
        n: usize,
        c: *mut f32,
        ldc: usize,
    ) -> Tile {
        let (m, mr, k) = (self.call.weights.m, self.call.weights.mr, self.call.weights.k);
        let a_group = &self.call.weights.a.as_slice()[it.group * self.call.weights.group_len()..];
        Tile {
            kc,
            a: a_group[mp * k * mr + k0 * mr..].as_ptr(),
            b,
            boff,
            c,
            ldc,
            m: mr.min(m - mp * mr),
            n,
            accumulate: k0 > 0,
            finish: k0 + kc == k,
            bias: self.call.bias[it.group * m + mp * mr..].as_ptr(),
            res: std::ptr::null(),
            act: self.call.act,
        }
    }

    /// Output element of (item's image and group, channel row of micro-panel `mp`, pixel `q`).
    fn c_at(&self, it: &Item, mp: usize, q: usize) -> *mut f32 {
        self.c_at_channel(it, mp * self.call.weights.mr, q)
    }

    /// Output element of (item's image and group, channel `ch` of the group, pixel `q`);
    /// on a blocked output, lane 0 of `ch`'s block there.
    fn c_at_channel(&self, it: &Item, ch: usize, q: usize) -> *mut f32 {
        // SAFETY (of the offset): channel `ch < m` and pixel `q < pixels` of this
        // (image, group)'s block of the output.
        unsafe { self.out.get().add(it.img_group * self.out_group + self.channel_offset(ch, q)) }
    }

    /// Floats from an output image's start to channel `ch` (its block's lane 0 on a blocked
    /// output), pixel `q`.
    fn channel_offset(&self, ch: usize, q: usize) -> usize {
        if self.blocked_out {
            (ch / BLOCK * self.out_plane + q) * BLOCK
        } else {
            ch * self.out_plane + q
        }
    }

    /// Floats between output channels (blocks of them on a blocked output).
    fn ldc(&self) -> usize {
        if self.blocked_out {
            BLOCK * self.out_plane
        } else {
            self.out_plane
        }
    }

    /// Run `body` on the item's grid copy (grid rows `r_a .. r_b` plus the halo): the
    /// shared copy of its (image, group, pixel block) when `shared` holds one, else a copy
    /// the item makes in its thread's scratch.
    #[allow(clippy::too_many_arguments)]
    fn with_grid(
        &self,
        it: &Item,
        x: &[f32],
        grid: &Grid,
        (r_a, r_b): (usize, usize),
        r_loc: usize,
        shared: Option<SendPtr>,
        body: impl FnOnce(*const f32),
    ) {
        let local_len = grid.local_len(r_loc, self.call.kernels.nr);
        if let Some(all) = shared {
            let block = it.img_group * self.plan.pixel_blocks + it.pixel_block;
            // SAFETY (of the offset): `shared` holds a copy of `local_len` floats per block.
            return body(unsafe { all.get().add(block * local_len) }.cast_const());
        }
        with_scratch(local_len, |buf| {
            let job =
                PadJob { grid: *grid, x: x.as_ptr(), r_a, rows: r_b - r_a + grid.halo, r_loc, dst: buf.as_mut_ptr() };
            // SAFETY: `x` is the group's planes, `buf` holds local_len(r_loc) floats and
            // r_b - r_a + halo <= r_loc rows.
            unsafe { (self.call.kernels.pad)(&job) };
            body(buf.as_ptr())
        })
    }

    /// The input rows that item `i + 1`, the one this thread most likely runs next after
    /// item `i` (`it`), copies into its grid, where each item copies its own (`shared` is
    /// None) and those are other rows: brought into L2 a slice per tile of item `i`, they
    /// spare that copy, bound by memory, its wait (3x3 stride-2 convs and the stem at batch
    /// 16 on one core: 3-6% faster).
    fn next_grid_rows(
        &self,
        input: &[f32],
        i: usize,
        it: &Item,
        grid: &Grid,
        rows_of: impl Fn(usize) -> (usize, usize),
        shared: Option<SendPtr>,
    ) -> Option<PlaneLines> {
        if shared.is_some() {
            return None;
        }
        let next = self.item(i + 1).filter(|n| (n.img_group, n.pixel_block) != (it.img_group, it.pixel_block))?;
        let (r_a, r_b) = rows_of(next.pixel_block);
        let (y0, y1) = grid.input_rows(r_a, r_b - r_a + grid.halo);
        let (g, ps) = (&grid.g, grid.ps);
        let x = self.input(input, &next);
        // A blocked input's planes hold `ps` channels.
        Some(PlaneLines::new(x.as_ptr(), g.c / ps, g.h * g.w * ps, y0 * g.w * ps, y1 * g.w * ps))
    }

    /// Where several channel chunks share a pixel block (batch 1 on small maps), make each
    /// block's grid copy once, spread over the threads by channels, before the items run:
    /// each chunk copying its own repeated the copy `m_chunks` times (a quarter of a 3x3
    /// stride-2 conv's time at 2 threads). Calls `run(Some(copies))`, or `run(None)` where
    /// each item's copy is its own.
    fn share_grids(
        &self,
        input: &[f32],
        grid: &Grid,
        rows_of: impl Fn(usize) -> (usize, usize) + Sync,
        r_loc: usize,
        threads: &Threads,
        run: impl FnOnce(Option<SendPtr>),
    ) {
        if self.plan.m_chunks == 1 {
            return run(None);
        }
        let local_len = grid.local_len(r_loc, self.call.kernels.nr);
        let blocks = self.call.images * self.call.groups * self.plan.pixel_blocks;
        // Channels in units of the grid's pixel (a blocked grid copies whole blocks).
        let units = grid.g.c / grid.ps;
        let slices = (ITEMS_PER_THREAD * threads.count()).div_ceil(blocks).clamp(1, units);
        scratch::with_shared(&GRIDS, blocks * local_len, |copies| {
            let dst = SendPtr(copies.as_mut_ptr());
            threads.for_each(blocks * slices, &|i| {
                let (block, slice) = (i / slices, i % slices);
                let (u0, u1) = share(units, slices, slice);
                let (c0, c1) = (u0 * grid.ps, u1 * grid.ps);
                let (r_a, r_b) = rows_of(block % self.plan.pixel_blocks);
                let img_group = block / self.plan.pixel_blocks;
                let mut part = *grid;
                part.g.c = c1 - c0;
                let job = PadJob {
                    grid: part,
                    x: input[img_group * self.in_group + c0 * grid.g.h * grid.g.w..].as_ptr(),
                    r_a,
                    rows: r_b - r_a + grid.halo,
                    r_loc,
                    // SAFETY (of the offset): channel c0's planes of this block's copy.
                    dst: unsafe { dst.get().add(block * local_len + grid.channel_offset(c0, r_loc)) },
                };
                // SAFETY: `x` is channels c0..c1 of the group's planes (blocked: whole
                // blocks); the destination is their part of the block's copy, written by
                // this job alone.
                unsafe { (self.call.kernels.pad)(&job) };
            });
            run(Some(dst));
        })
    }

    /// The residual's element at `c_at_channel(it, ch, q)`, or null without one.
    fn res_at(&self, it: &Item, ch: usize, q: usize) -> *const f32 {
        let base = self.res.get().cast_const();
        // The residual has the output's shape and layout (checked by the caller): same offset.
        base.wrapping_add(if base.is_null() { 0 } else { it.img_group * self.out_group + self.channel_offset(ch, q) })
    }
}

/// SAFETY for every `(kernels.tile)` call below: the A micro-panel has `kc * mr` floats
/// from `a`; every B row `b + boff[k]` has `nr` readable floats (packed panels, the input
/// with its tail panel packed, or a local copy with slack); the C tile is inside `out`
/// (or the tile buffer) and written by this item only, items owning disjoint (image,
/// group, pixel block, channel chunk) tiles; and the ISA was checked at pack time.
fn run_pointwise(call: &Call, input: &[f32], out: &mut [f32], threads: &Threads) {
    let (k, nr) = (call.weights.k, call.kernels.nr);
    let pixels = call.geom.pixels();
    let panels = pixels.div_ceil(nr);
    let common = Common::new(call, out, panels, threads, k, |p| p * nr * k);
    let hw = call.geom.h * call.geom.w;
    let offsets = plane_offsets(k, hw);
    let packed = packed_offsets(k, nr);
    let full = pixels / nr; // panels read in place; a partial last one is packed
    let item = |i: usize| {
        let Some(it) = common.item(i) else { return };
        let x = common.input(input, &it);
        // A partial last panel would read past the input's end: it is packed, zero-padded.
        let has_tail = it.pb > full;
        with_scratch(if has_tail { k * nr } else { 0 }, |tail| {
            if has_tail {
                let job = PackJob {
                    g: call.geom,
                    x: x.as_ptr(),
                    k0: 0,
                    kc: k,
                    p0: full * nr,
                    np: pixels - full * nr,
                    nr,
                    dst: tail.as_mut_ptr(),
                };
                // SAFETY: `x` is the group's planes, `tail` holds one k x nr panel.
                unsafe { (call.kernels.pack)(&job) };
            }
            for mp in it.ma..it.mb {
                for pj in it.pa..it.pb {
                    let q = pj * nr;
                    let (b, boff) =
                        if pj < full { (x[q..].as_ptr(), offsets.as_ptr()) } else { (tail.as_ptr(), packed.as_ptr()) };
                    let mut t =
                        common.tile(&it, mp, 0, k, b, boff, nr.min(pixels - q), common.c_at(&it, mp, q), pixels);
                    t.res = common.res_at(&it, mp * call.weights.mr, q);
                    unsafe { (call.kernels.tile)(&t) };
                }
            }
        });
    };
    threads.for_each(common.items(), &item);
}

/// Pixels `a .. b` of `count` planes `len` floats apart: an input range to bring into L2
/// ahead of its use, in slices, a cursor through its lines (no division per line: the
/// stem's next item has thousands of them).
struct PlaneLines {
    planes: *const f32,
    len: usize,
    a: usize,
    per_plane: usize,
    lines: usize,
    /// The next line: its index, plane and line in the plane.
    next: usize,
    plane: usize,
    line: usize,
}

impl PlaneLines {
    fn new(planes: *const f32, count: usize, len: usize, a: usize, b: usize) -> PlaneLines {
        let per_plane = (b - a).div_ceil(16);
        PlaneLines { planes, len, a, per_plane, lines: per_plane * count, next: 0, plane: 0, line: 0 }
    }

    /// The lines up to the end of slice `part` of `parts` not yet fetched.
    fn prefetch_l2(&mut self, part: usize, parts: usize) {
        let last = (part + 1) * self.lines / parts;
        while self.next < last {
            let p = self.planes.wrapping_add(self.plane * self.len + self.a + 16 * self.line);
            // SAFETY: a prefetch hint, never faults.
            unsafe { super::kernels::simd::prefetch_l2(p) };
            self.next += 1;
            self.line += 1;
            if self.line == self.per_plane {
                (self.plane, self.line) = (self.plane + 1, 0);
            }
        }
    }
}

fn run_direct(call: &Call, input: &[f32], out: &mut [f32], threads: &Threads) {
    let (k, nr) = (call.weights.k, call.kernels.nr);
    let grid = Grid::new(call.geom).expect("direct method chosen only where the grid exists");
    let vpixels = grid.pixels();
    let panels = vpixels.div_ceil(nr);
    // Grid rows (per phase plane) a block of p panels may span, halo included.
    let rows_for = |p: usize| ((p * nr).div_ceil(grid.wq) + 1).min(call.geom.oh) + grid.halo;
    let common = Common::new(call, out, panels, threads, k, |p| grid.local_len(rows_for(p), nr));
    // Local copies are all laid out for the largest block, so one offset table serves all.
    // Output rows of pixel block `j` (none for an empty block).
    let block_rows = |j: usize| {
        let (pa, pb) = share(panels, common.plan.pixel_blocks, j);
        if pa < pb {
            grid.rows(pa * nr, (pb * nr).min(vpixels))
        } else {
            (0, 0)
        }
    };
    let r_loc = largest_block(common.plan.pixel_blocks, grid.halo, block_rows);
    let offsets = grid.offsets(r_loc);
    let (ow, out_plane) = (call.geom.ow, common.out_plane);
    let item = |i: usize, shared: Option<SendPtr>| {
        let Some(it) = common.item(i) else { return };
        let x = common.input(input, &it);
        let (r_a, r_b) = block_rows(it.pixel_block);
        let mut ahead = common.next_grid_rows(input, i, &it, &grid, block_rows, shared);
        let all_tiles = (it.mb - it.ma) * (it.pb - it.pa);
        common.with_grid(&it, x, &grid, (r_a, r_b), r_loc, shared, |buf| {
            let mut tile_buf = [0.0f32; TILE_FLOATS];
            let mut done = 0;
            for mp in it.ma..it.mb {
                for pj in it.pa..it.pb {
                    if let Some(next) = &mut ahead {
                        next.prefetch_l2(done, all_tiles);
                    }
                    done += 1;
                    let v = pj * nr;
                    let n = nr.min(vpixels - v);
                    // Virtual pixel v reads the local copy at v - r_a * wq.
                    // SAFETY (of the offset): inside the copy (local_len floats).
                    let b = unsafe { buf.add(v - r_a * grid.wq) };
                    // A tile inside one output row (every tile of a dense grid) is stored
                    // straight to its output pixels; one crossing the grid's gap columns
                    // goes through the tile buffer and the scatter.
                    let (row, col) = (v / grid.wq, v % grid.wq);
                    if grid.is_dense() || col + n <= ow {
                        let q = row * ow + col;
                        let mut t =
                            common.tile(&it, mp, 0, k, b, offsets.as_ptr(), n, common.c_at(&it, mp, q), out_plane);
                        t.res = common.res_at(&it, mp * call.weights.mr, q);
                        unsafe { (call.kernels.tile)(&t) };
                    } else {
                        let mut t = common.tile(&it, mp, 0, k, b, offsets.as_ptr(), n, tile_buf.as_mut_ptr(), nr);
                        // The residual is added (and the activation applied) in the scatter,
                        // where the grid's columns become output pixels.
                        let res = common.res_at(&it, mp * call.weights.mr, 0);
                        if !res.is_null() {
                            t.act = Epilogue::None;
                        }
                        unsafe { (call.kernels.tile)(&t) };
                        let job = ScatterJob {
                            src: tile_buf.as_ptr(),
                            nr,
                            rows: t.m,
                            v0: v,
                            n,
                            wq: grid.wq,
                            ow,
                            dst: common.c_at(&it, mp, 0),
                            ldc: out_plane,
                            res,
                            act: call.act,
                        };
                        // SAFETY: the tile buffer holds t.m rows of nr; the destination is
                        // t.m output planes of this item's channels, at real pixels only.
                        unsafe { (call.kernels.scatter)(&job) };
                    }
                }
            }
        });
    };
    common.share_grids(input, &grid, block_rows, r_loc, threads, |shared| {
        threads.for_each(common.items(), &|i| item(i, shared))
    });
}

fn run_im2col(call: &Call, input: &[f32], out: &mut [f32], threads: &Threads) {
    let (k, nr) = (call.weights.k, call.kernels.nr);
    let pixels = call.geom.pixels();
    let panels = pixels.div_ceil(nr);
    let kc = k.div_ceil(k.div_ceil(KC_MAX));
    let common = Common::new(call, out, panels, threads, kc, |p| p * nr * kc);
    let packed: Vec<u32> = (0..kc).map(|i| (i * nr) as u32).collect();
    let item = |i: usize| {
        let Some(it) = common.item(i) else { return };
        let x = common.input(input, &it);
        let (p0, np) = (it.pa * nr, (it.pb * nr).min(pixels) - it.pa * nr);
        with_scratch(kc * (it.pb - it.pa) * nr, |buf| {
            for kb in 0..common.plan.k_blocks {
                let (k0, k1) = (kb * kc, ((kb + 1) * kc).min(k));
                let job = PackJob { g: call.geom, x: x.as_ptr(), k0, kc: k1 - k0, p0, np, nr, dst: buf.as_mut_ptr() };
                // SAFETY: `x` is the group's planes, `buf` holds kc * (pb - pa) * nr floats
                // for ceil(np / nr) <= pb - pa panels, and the block is inside B.
                unsafe { (call.kernels.pack)(&job) };
                for mp in it.ma..it.mb {
                    for pj in 0..it.pb - it.pa {
                        let q = p0 + pj * nr;
                        let b = buf[pj * (k1 - k0) * nr..].as_ptr();
                        let mut t = common.tile(
                            &it,
                            mp,
                            k0,
                            k1 - k0,
                            b,
                            packed.as_ptr(),
                            nr.min(pixels - q),
                            common.c_at(&it, mp, q),
                            pixels,
                        );
                        if call.residual_in_output {
                            // The K blocks' partial sums go where the residual is: the first
                            // block accumulates onto it instead of adding it at the end.
                            t.accumulate = true;
                        } else {
                            t.res = common.res_at(&it, mp * call.weights.mr, q);
                        }
                        unsafe { (call.kernels.tile)(&t) };
                    }
                }
            }
        });
    };
    threads.for_each(common.items(), &item);
}

/// One channel tile: `n` pixels from pixel `a` of run `run` on, over `runs` whole runs
/// when more than one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChannelTile {
    run: usize,
    a: usize,
    n: usize,
    runs: usize,
}

/// How a conv's runs of pixels are cut into channel tiles: each run into near-equal tiles
/// of at most `max_pixels` (a 7x7 map in place: 10, 10, 10, 10, 9), or, on the direct grid
/// where the ISA has the kernel (`KernelSet::two_row_run`), two whole runs to a tile.
#[derive(Debug, Clone, Copy)]
struct ChannelTiles {
    run_len: usize,
    per_run: usize,
    two_rows: bool,
    runs: usize,
    tiles: usize,
}

impl ChannelTiles {
    fn new(runs: usize, run_len: usize, on_grid: bool, ks: &KernelSet) -> ChannelTiles {
        let two_rows = on_grid && runs > 1 && run_len == ks.two_row_run;
        let per_run = run_len.div_ceil(ks.max_pixels);
        let tiles = if two_rows { runs.div_ceil(2) } else { runs * per_run };
        ChannelTiles { run_len, per_run, two_rows, runs, tiles }
    }

    fn tile(&self, t: usize) -> ChannelTile {
        if self.two_rows {
            let runs = (self.runs - 2 * t).min(2);
            return ChannelTile { run: 2 * t, a: 0, n: runs * self.run_len, runs };
        }
        let (a, b) = share(self.run_len, self.per_run, t % self.per_run);
        ChannelTile { run: t / self.per_run, a, n: b - a, runs: 1 }
    }

    /// Runs (output rows) that `p` tiles cover at most.
    fn runs_of(&self, p: usize) -> usize {
        if self.two_rows {
            2 * p
        } else {
            p.div_ceil(self.per_run)
        }
    }
}

/// The channel-vectorized orientation (`Method::Channels`): a work item is (image, group,
/// run of pixel tiles, chunk of A^T panels); B is the input in place (1x1 stride 1) or
/// the item's rows of the direct grid, as in `run_direct` (a blocked grid for a blocked
/// input, `Call::layouts`).
fn run_channels(call: &Call, input: &[f32], out: &mut [f32], threads: &Threads) {
    let ks = call.kernels;
    let (k, m, nc) = (call.weights.k, call.weights.m, ks.nc);
    let g = call.geom;
    let at = call.weights.channel_panels();
    let (runs, run_len) = pixel_runs(&g);
    let layouts = call.layouts;
    let grid = if g.is_pointwise() { None } else { Grid::new(g) };
    let grid = grid.map(|grid| if layouts.input { grid.blocked() } else { grid });
    // Floats per B pixel.
    let ps = grid.map_or(1, |grid| grid.ps);
    let ctile = ks.ctile_layouts[layouts.input as usize][layouts.output as usize];
    let rows = ChannelTiles::new(runs, run_len, grid.is_some(), &ks);
    let tiles = rows.tiles;
    let common = match &grid {
        None => Common::for_channels(call, out, tiles, threads, |p| p * ks.max_pixels * k),
        Some(grid) => {
            Common::for_channels(call, out, tiles, threads, |p| grid.local_len(rows.runs_of(p) + 1 + grid.halo, 0))
        }
    };
    // Output rows of pixel block `j`: from its first tile's run to its last's (none for an
    // empty block).
    let block_rows = |j: usize| {
        let (ta, tb) = share(tiles, common.plan.pixel_blocks, j);
        if ta < tb {
            let last = rows.tile(tb - 1);
            (rows.tile(ta).run, last.run + last.runs)
        } else {
            (0, 0)
        }
    };
    let r_loc = largest_block(common.plan.pixel_blocks, grid.map_or(0, |g| g.halo), block_rows);
    let offsets: Vec<u32> = match &grid {
        None => plane_offsets(k, g.h * g.w),
        Some(grid) => grid.offsets(r_loc),
    };
    let kparts = KParts::new(k, &ks);
    // Each tile's pixels, worked out once (`share` divides).
    let tile_list: Vec<ChannelTile> = (0..tiles).map(|t| rows.tile(t)).collect();
    let item = |i: usize, shared: Option<SendPtr>| {
        let Some(it) = common.item(i) else { return };
        let x = common.input(input, &it);
        let (r_a, r_b) = block_rows(it.pixel_block);
        let mut ahead = grid.as_ref().and_then(|grid| common.next_grid_rows(input, i, &it, grid, block_rows, shared));
        let all_tiles = (it.mb - it.ma) * kparts.parts * (it.pb - it.pa);
        // B of pixel (row r, column c) of the output: in place, or the item's grid rows.
        let mut body = |b_at: *const f32| {
            let a_group = &at[it.group * call.weights.channel_group_len()..];
            let tiles = it.pb - it.pa;
            let mut done = 0;
            with_sums(kparts.sums_len(tiles), |sums| {
                for mp in it.ma..it.mb {
                    let ch = mp * nc;
                    // Past the item's last panel: the next chunk's first, which this thread
                    // most likely runs next (its items follow each other, chunks slowest).
                    let next = if mp + 1 < common.m_panels { mp + 1 } else { mp };
                    for part in 0..kparts.parts {
                        let (k0, k1) = kparts.rows(part);
                        let pf = kparts.prefetch(mp, part, next, tiles);
                        for (i, &ChannelTile { run, a, n, runs }) in tile_list[it.pa..it.pb].iter().enumerate() {
                            // Output pixel q; B column: in place q itself, on the grid the
                            // local copy's virtual pixel (a tile of two rows: the second
                            // `wq` on).
                            let (q, v, row_step) = match &grid {
                                None => (a, a, 0),
                                Some(grid) => (run * g.ow + a, (run - r_a) * grid.wq + a, grid.wq * ps),
                            };
                            let ct = CTile {
                                kc: k1 - k0,
                                a: a_group[(mp * k + k0) * nc..].as_ptr(),
                                // SAFETY (of the offset): pixel v + n - 1 lies inside B row 0.
                                b: unsafe { b_at.add(v * ps) },
                                boff: offsets[k0..].as_ptr(),
                                c: common.c_at_channel(&it, ch, q),
                                ldc: common.ldc(),
                                m: nc.min(m - ch),
                                n,
                                bias: call.bias[it.group * m + ch..].as_ptr(),
                                res: common.res_at(&it, ch, q),
                                act: call.act,
                                pf: pf.pf(a_group, i),
                                pf_step: pf.step,
                                lane0: ch % BLOCK,
                                seg: if runs > 1 { run_len } else { 0 },
                                row_step,
                                sums: kparts.sums_of(sums, i),
                                first_part: part == 0,
                                last_part: part + 1 == kparts.parts,
                            };
                            // SAFETY: the A^T panel's part has (k1 - k0) * nc floats; every B
                            // row `b + offsets[k]` has the tile's n pixels (a run never crosses
                            // a row of the grid or the end of an input plane; a two-row tile's
                            // second run starts `wq` on, in the item's grid rows
                            // `block_rows`); the C tile (m channels, n pixels, contiguous
                            // across a two-row tile's runs in NCHW and blocked alike) and its
                            // sums are this item's own; a blocked side has whole blocks
                            // (asserted in `run`).
                            unsafe { ctile(&ct) };
                            if let Some(next) = &mut ahead {
                                next.prefetch_l2(done, all_tiles);
                            }
                            done += 1;
                        }
                    }
                }
            });
        };
        match &grid {
            None => body(x.as_ptr()),
            Some(grid) => common.with_grid(&it, x, grid, (r_a, r_b), r_loc, shared, body),
        }
    };
    match &grid {
        None => threads.for_each(common.items(), &|i| item(i, None)),
        Some(grid) => common.share_grids(input, grid, block_rows, r_loc, threads, |shared| {
            threads.for_each(common.items(), &|i| item(i, shared))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::cpu::kernels::kernel_set;
    use crate::exec::cpu::Isa;

    /// Every pixel of every run in exactly one tile, each tile within the ISA's pixels.
    fn covers_once(runs: usize, run_len: usize, on_grid: bool, ks: &KernelSet) -> Vec<ChannelTile> {
        let tiles = ChannelTiles::new(runs, run_len, on_grid, ks);
        let mut seen = vec![0u8; runs * run_len];
        let all: Vec<ChannelTile> = (0..tiles.tiles).map(|t| tiles.tile(t)).collect();
        for t in &all {
            assert!(t.n >= 1 && t.n <= ks.max_pixels, "{t:?}");
            assert!(t.runs == 1 || (t.a == 0 && t.n == t.runs * run_len), "{t:?}");
            let first = t.run * run_len + t.a;
            for s in &mut seen[first..first + t.n] {
                *s += 1;
            }
        }
        assert!(seen.iter().all(|&s| s == 1), "{runs} x {run_len}: {seen:?}");
        for p in 1..=tiles.tiles {
            let covered = all[..p].iter().map(|t| t.run + t.runs).max().unwrap();
            assert!(tiles.runs_of(p) >= covered, "{p} tiles cover {covered} runs");
        }
        all
    }

    #[test]
    fn channel_tiles_cover_each_pixel_once() {
        for isa in [Isa::Scalar, Isa::detect()] {
            let ks = kernel_set(isa);
            for (runs, run_len) in [(7, 7), (5, 7), (1, 7), (14, 14), (3, 29), (1, 49), (2, 6)] {
                for on_grid in [false, true] {
                    covers_once(runs, run_len, on_grid, &ks);
                }
            }
        }
    }

    /// On AVX-512 a 7-wide map's rows go two to a tile on the grid (the last alone when
    /// their count is odd), never in place, where the whole map is one run.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn seven_wide_rows_pair_up_on_avx512() {
        let ks = kernel_set(Isa::Avx512);
        let tiles = covers_once(7, 7, true, &ks);
        let shapes: Vec<(usize, usize)> = tiles.iter().map(|t| (t.run, t.runs)).collect();
        assert_eq!(shapes, [(0, 2), (2, 2), (4, 2), (6, 1)]);
        assert!(covers_once(7, 7, false, &ks).iter().all(|t| t.runs == 1));
        assert!(covers_once(7, 8, true, &ks).iter().all(|t| t.runs == 1));
        assert!(covers_once(7, 7, true, &kernel_set(Isa::Avx2)).iter().all(|t| t.runs == 1));
    }

    /// At batch 1 under megabytes of weights one pixel block takes a B up to twice the
    /// budget (the weights streamed once); with a batch, or lighter weights, it does not.
    #[test]
    fn heavy_weights_at_batch_1_stream_once() {
        // B floats of p panels: 48 k each, so two fit B_FLOATS (128 k) and five twice it.
        let cost = |p: usize| p * 48 * 1024;
        let heavy = 8 * B_FLOATS;
        assert_eq!(plan(1, 4608, 4608, 3, 16, 2, heavy, cost).pixel_blocks, 1);
        assert_eq!(plan(1, 4608, 4608, 3, 16, 2, heavy - 1, cost).pixel_blocks, 2);
        assert_eq!(plan(16, 4608, 4608, 3, 16, 2, heavy, cost).pixel_blocks, 2);
        assert_eq!(plan(1, 4608, 4608, 7, 16, 2, heavy, cost).pixel_blocks, 2);
        assert_eq!(plan(1, 4608, 4608, 7, 16, 2, heavy - 1, cost).pixel_blocks, 4);
    }
}
