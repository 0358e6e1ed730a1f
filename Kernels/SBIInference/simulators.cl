// Sérsic galaxy images for the galaxy simulator (see SersicProfile and renderSersicGalaxies in
// Sources/SBIBackend/SimulatorKernels.swift). Twin: CPU/CPUBackend+Simulators.swift, formula
// for formula and in the same summation order.
//
// The padded stamp (PW × PH pixels, PW = width + 2·pad) is cut into s×s cells per pixel. Cells are
// stored by sub-pixel phase: cell (cx, cy) = (X·s + px, Y·s + py) lives at
// ((py·s + px)·PH + Y)·PW + X, so each phase is an ordinary PW × PH image and the convolution
// reads consecutive addresses for consecutive pixels.
//
// Pass 1, sersic_cells: one item per cell and image; the cell's flux by an m×m midpoint rule, m
// chosen by the cell's Chebyshev distance from the galaxy centre; inside the central cell the
// core ellipse R² < core2 is skipped and its exact flux (parameter 7) added instead.
// Pass 2, cells_convolve: one item per output pixel and image:
//   out(i, j) = Σ_{py, px} Σ_{b'} [ Σ_{a'} tap(s·b' + py, s·a' + px) · phase_{py,px}(j + b', i + a') ]
// with b', a' in [0, 2·pad + 1) — the cells within pad pixels of the pixel, each weighted by the
// pixel-integrated PSF at its offset. Taps are side × side (side = (2·pad + 1)·s), row-major.
//
// Parameters per row (SersicProfile.parameterCount = 8):
//   0: ln I_e + b_n   1: 1/r_e²   2: 1/(2n)   3: b_n   4: 1/q²   5: cos φ   6: sin φ   7: core flux

__kernel void sersic_cells(__global const float* params, int po, __global float* cells, int co,
                           int rows, int pw, int ph, int s, int cxc, int cyc,
                           int m_centre, int m_inner, int m_middle, int m_outer,
                           float r_inner, float r_middle, float core2) {
    int cell = get_global_id(0), row = get_global_id(1);
    int per_phase = pw * ph;
    if (cell >= per_phase * s * s || row >= rows) return;
    __global const float* p = params + po + row * 8;
    float A = p[0], inv_re2 = p[1], half_inv_n = p[2], b = p[3], inv_q2 = p[4], c = p[5], sn = p[6], core = p[7];
    int phase = cell / per_phase, rest = cell - phase * per_phase;
    int ix = (rest % pw) * s + phase % s - cxc, iy = (rest / pw) * s + phase / s - cyc;
    int cheb = max(abs(ix), abs(iy));
    float inv_s = 1.0f / (float)s;
    float d = (float)cheb * inv_s;
    int m = cheb <= 1 ? m_centre : (d <= r_inner ? m_inner : (d <= r_middle ? m_middle : m_outer));
    float x0 = (float)ix * inv_s, y0 = (float)iy * inv_s;
    float step = inv_s / (float)m;
    float start = -0.5f * inv_s + 0.5f * step;
    float sum = 0.0f;
    for (int v = 0; v < m; ++v) {
        float dy = y0 + (start + (float)v * step);
        float partial = 0.0f;
        for (int u = 0; u < m; ++u) {
            float dx = x0 + (start + (float)u * step);
            float xp = c * dx + sn * dy;
            float yp = c * dy - sn * dx;
            float r2 = xp * xp + yp * yp * inv_q2;
            if (r2 >= core2) partial += exp(A - b * pow(r2 * inv_re2, half_inv_n));
        }
        sum += partial;
    }
    float flux = sum * (step * step);
    if (ix == 0 && iy == 0) flux += core;
    cells[co + row * per_phase * s * s + cell] = flux;
}

__kernel void cells_convolve(__global const float* cells, int co, __global const float* taps, int to,
                             __global float* images, int io, int rows, int width, int height,
                             int pw, int ph, int s, int pad) {
    int pixel = get_global_id(0), row = get_global_id(1);
    if (pixel >= width * height || row >= rows) return;
    int i = pixel % width, j = pixel / width;
    int span = 2 * pad + 1, side = span * s;
    float acc = 0.0f;
    for (int py = 0; py < s; ++py) {
        for (int px = 0; px < s; ++px) {
            __global const float* phase = cells + co + (row * s * s + py * s + px) * pw * ph + j * pw + i;
            for (int b = 0; b < span; ++b) {
                __global const float* line = phase + b * pw;
                __global const float* t = taps + to + (s * b + py) * side + px;
                float partial = 0.0f;
                for (int a = 0; a < span; ++a) partial += t[s * a] * line[a];
                acc += partial;
            }
        }
    }
    images[io + row * width * height + pixel] = acc;
}
