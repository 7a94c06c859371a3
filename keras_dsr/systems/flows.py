r"""Definitions of the benchmark flows.

Every system is written as an autonomous ODE dx/dt = f(x) on a state of dimension
D (a periodically forced system carries its drive phase as a state variable), with
an analytic Jacobian for the variational equations.  States are arrays
``[..., D]``; all functions are vectorised over leading axes.

=================  ==========================================================  =====
name               equations (default parameters)                              dt
=================  ==========================================================  =====
lorenz63           x' = s(y-x), y' = x(r-z)-y, z' = xy-bz  (s=10, r=28, b=8/3)  0.01
rossler            x' = -y-z, y' = x+ay, z' = b+z(x-c)  (a=b=0.2, c=5.7)        0.05
lorenz96           x_i' = (x_{i+1}-x_{i-2}) x_{i-1} - x_i + F  (dim=10, F=8)     0.02
chua               x' = al(y-x-g(x)), y' = x-y+z, z' = -be y,                   0.02
                   g(x) = m1 x + (m0-m1)(|x+1|-|x-1|)/2
                   (al=15.6, be=28, m0=-8/7, m1=-5/7)
thomas             x' = sin y - bx, y' = sin z - by, z' = sin x - bz (b=0.1)    0.1
                   (b = 0.208186 is the edge of chaos, where the exponent is
                   ~0.01 and hard to resolve; at b = 0.1 it is ~0.07)
halvorsen          x' = -ax-4y-4z-y^2 (and cyclic in x->y->z->x)  (a=1.4)       0.01
aizawa             x' = (z-b)x - dy, y' = dx + (z-b)y,                          0.01
                   z' = c + az - z^3/3 - (x^2+y^2)(1+ez) + f z x^3
                   (a=0.95, b=0.7, c=0.6, d=3.5, e=0.25, f=0.1)
sprott_b           x' = ayz, y' = x-y, z' = b-xy  (a=b=1)                       0.05
sprott_c           x' = ayz, y' = x-y, z' = 1-x^2  (a=1; Sprott 1994, case C)   0.05
lorenz84           x' = -y^2-z^2-ax+aF, y' = xy-bxz-y+G, z' = bxy+xz-z          0.05
                   (a=0.25, b=4, F=8, G=1)
chen               x' = a(y-x), y' = (c-a)x - xz + cy, z' = xy-bz               0.002
                   (a=35, b=3, c=28)
lu                 x' = a(y-x), y' = -xz + cy, z' = xy - bz  (a=36, b=3, c=20)   0.005
                   (Lü and Chen 2002; between Lorenz and Chen)
rucklidge          x' = -kx + ly - yz, y' = x, z' = -z + y^2  (k=2, l=6.7)     0.05
                   (Rucklidge 1992, double convection)
shimizu_morioka    x' = y, y' = (1-z)x - ay, z' = -bz + x^2  (a=0.75, b=0.45)   0.05
                   (Shimizu and Morioka 1980; Lorenz-like)
hindmarsh_rose     x' = y - ax^3 + bx^2 - z + I, y' = c - dx^2 - y,             0.05
                   z' = r(s(x-xr) - z)   (a=1, b=3, c=1, d=5, r=0.006, s=4,
                   xr=-1.6, I=3.25); x, y fast, z slow (time-scale ratio 1/r)
duffing            x' = v, v' = -de v - al x - be x^3 + ga cos(phi), phi' = om  0.05
                   (de=0.3, al=-1, be=1, ga=0.5, om=1.2); observed (x, v); the
                   drive cos(phi) is returned as the external input
=================  ==========================================================  =====

Default initial conditions (``System.x0``; ``simulate`` perturbs them by a
seed-dependent 0.01 sd unless ``seed=0``, then discards ``burn_in`` time units):
lorenz63 (-8, 7, 27); rossler (1, 1, 0); lorenz96 x_i = F, with x_1 += 0.01 and
x_{dim/2+1} -= 0.5; chua (0.7, 0, 0); thomas (0.1, 0, 0); halvorsen (-5, 0, 0);
aizawa (0.1, 0, 0); sprott_b, sprott_c (0.05, 0.05, 0.05); lorenz84 (1, 0, 0);
chen (-10, 0, 37); lu (-3, 2, 20); rucklidge (1, 0, 4.5); shimizu_morioka
(0.1, 0, 0); hindmarsh_rose (-1.3, -7.3, 3); duffing (x, v, phi) = (0.5, 0, 0).
Burn-in (time units): 50 for lorenz63, lorenz96, halvorsen; 20 for chen, lu; 100 for
chua, aizawa; 200 for rossler, sprott_b, sprott_c, lorenz84, rucklidge,
shimizu_morioka, duffing; 300 for
hindmarsh_rose; 500 for thomas. Mackey–Glass (a delay equation) is defined in
:mod:`keras_dsr.systems.delay`.
"""

import numpy as np

from keras_dsr.systems._registry import System, register_system


def _stack(*cols):
    if np.ndim(cols[0]) == 0:  # a single state: the fast path used by solve_ivp
        return np.array(cols, dtype=float)
    out = np.empty(np.shape(cols[0]) + (len(cols),))
    for i, c in enumerate(cols):
        out[..., i] = c
    return out


def _jac(x, rows):
    """Stack a list of D rows, each a list of D entries (arrays or scalars)."""
    shape = x.shape[:-1]
    return np.stack(
        [np.stack([np.broadcast_to(np.asarray(e, float), shape) for e in row], -1)
         for row in rows],
        axis=-2,
    )


# ---------------------------------------------------------------- Lorenz-63
def _lorenz63(x, p):
    X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
    return _stack(p["sigma"] * (Y - X), X * (p["rho"] - Z) - Y, X * Y - p["beta"] * Z)


def _lorenz63_jac(x, p):
    X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
    s = p["sigma"]
    return _jac(x, [[-s, s, 0.0], [p["rho"] - Z, -1.0, -X], [Y, X, -p["beta"]]])


# ---------------------------------------------------------------- Rössler
def _rossler(x, p):
    X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
    return _stack(-Y - Z, X + p["a"] * Y, p["b"] + Z * (X - p["c"]))


def _rossler_jac(x, p):
    X, Z = x[..., 0], x[..., 2]
    return _jac(x, [[0.0, -1.0, -1.0], [1.0, p["a"], 0.0], [Z, 0.0, X - p["c"]]])


# ---------------------------------------------------------------- Lorenz-96
def _lorenz96(x, p):
    return (np.roll(x, -1, -1) - np.roll(x, 2, -1)) * np.roll(x, 1, -1) - x + p["F"]


def _lorenz96_jac(x, p):
    D = x.shape[-1]
    J = np.zeros(x.shape + (D,))
    i = np.arange(D)
    J[..., i, i] = -1.0
    J[..., i, (i + 1) % D] = np.roll(x, 1, -1)
    J[..., i, (i - 2) % D] = -np.roll(x, 1, -1)
    J[..., i, (i - 1) % D] = np.roll(x, -1, -1) - np.roll(x, 2, -1)
    return J


def _lorenz96_x0(p):
    D = int(p["dim"])
    x0 = np.full(D, float(p["F"]))
    x0[0] += 0.01
    x0[D // 2] -= 0.5
    return x0


# ---------------------------------------------------------------- Chua
def _chua_g(X, p):
    return p["m1"] * X + 0.5 * (p["m0"] - p["m1"]) * (np.abs(X + 1) - np.abs(X - 1))


def _chua(x, p):
    X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
    return _stack(p["alpha"] * (Y - X - _chua_g(X, p)), X - Y + Z, -p["beta"] * Y)


def _chua_jac(x, p):
    X = x[..., 0]
    dg = p["m1"] + (p["m0"] - p["m1"]) * (np.abs(X) < 1.0)
    a = p["alpha"]
    return _jac(x, [[-a * (1.0 + dg), a, 0.0], [1.0, -1.0, 1.0], [0.0, -p["beta"], 0.0]])


# ---------------------------------------------------------------- Thomas
def _thomas(x, p):
    X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
    b = p["b"]
    return _stack(np.sin(Y) - b * X, np.sin(Z) - b * Y, np.sin(X) - b * Z)


def _thomas_jac(x, p):
    X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
    b = -p["b"]
    return _jac(x, [[b, np.cos(Y), 0.0], [0.0, b, np.cos(Z)], [np.cos(X), 0.0, b]])


# ---------------------------------------------------------------- Halvorsen
def _halvorsen(x, p):
    X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
    a = p["a"]
    return _stack(
        -a * X - 4 * Y - 4 * Z - Y**2,
        -a * Y - 4 * Z - 4 * X - Z**2,
        -a * Z - 4 * X - 4 * Y - X**2,
    )


def _halvorsen_jac(x, p):
    X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
    a = -p["a"]
    return _jac(x, [[a, -4 - 2 * Y, -4.0], [-4.0, a, -4 - 2 * Z], [-4 - 2 * X, -4.0, a]])


# ---------------------------------------------------------------- Aizawa
def _aizawa(x, p):
    X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
    a, b, c, d, e, f = (p[k] for k in "abcdef")
    return _stack(
        (Z - b) * X - d * Y,
        d * X + (Z - b) * Y,
        c + a * Z - Z**3 / 3 - (X**2 + Y**2) * (1 + e * Z) + f * Z * X**3,
    )


def _aizawa_jac(x, p):
    X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
    a, b, c, d, e, f = (p[k] for k in "abcdef")
    return _jac(x, [
        [Z - b, -d, X],
        [d, Z - b, Y],
        [-2 * X * (1 + e * Z) + 3 * f * Z * X**2, -2 * Y * (1 + e * Z),
         a - Z**2 - e * (X**2 + Y**2) + f * X**3],
    ])


# ---------------------------------------------------------------- Sprott B
def _sprott_b(x, p):
    X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
    return _stack(p["a"] * Y * Z, X - Y, p["b"] - X * Y)


def _sprott_b_jac(x, p):
    X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
    a = p["a"]
    return _jac(x, [[0.0, a * Z, a * Y], [1.0, -1.0, 0.0], [-Y, -X, 0.0]])


# ---------------------------------------------------------------- Sprott C
def _sprott_c(x, p):
    X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
    return _stack(p["a"] * Y * Z, X - Y, 1.0 - X**2)


def _sprott_c_jac(x, p):
    X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
    a = p["a"]
    return _jac(x, [[0.0, a * Z, a * Y], [1.0, -1.0, 0.0], [-2 * X, 0.0, 0.0]])


# ---------------------------------------------------------------- Lorenz-84
def _lorenz84(x, p):
    X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
    a, b = p["a"], p["b"]
    return _stack(
        -Y**2 - Z**2 - a * X + a * p["F"],
        X * Y - b * X * Z - Y + p["G"],
        b * X * Y + X * Z - Z,
    )


def _lorenz84_jac(x, p):
    X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
    a, b = p["a"], p["b"]
    return _jac(x, [
        [-a, -2 * Y, -2 * Z],
        [Y - b * Z, X - 1, -b * X],
        [b * Y + Z, b * X, X - 1],
    ])


# ---------------------------------------------------------------- Chen
def _chen(x, p):
    X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
    a, b, c = p["a"], p["b"], p["c"]
    return _stack(a * (Y - X), (c - a) * X - X * Z + c * Y, X * Y - b * Z)


def _chen_jac(x, p):
    X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
    a, b, c = p["a"], p["b"], p["c"]
    return _jac(x, [[-a, a, 0.0], [c - a - Z, c, -X], [Y, X, -b]])


# ---------------------------------------------------------------- Lü
def _lu(x, p):
    X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
    return _stack(p["a"] * (Y - X), -X * Z + p["c"] * Y, X * Y - p["b"] * Z)


def _lu_jac(x, p):
    X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
    return _jac(x, [[-p["a"], p["a"], 0.0], [-Z, p["c"], -X], [Y, X, -p["b"]]])


# ---------------------------------------------------------------- Rucklidge
def _rucklidge(x, p):
    X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
    return _stack(-p["kappa"] * X + p["lam"] * Y - Y * Z, X, -Z + Y**2)


def _rucklidge_jac(x, p):
    X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
    return _jac(x, [[-p["kappa"], p["lam"] - Z, -Y], [1.0, 0.0, 0.0], [0.0, 2 * Y, -1.0]])


# ---------------------------------------------------------------- Shimizu-Morioka
def _shimizu_morioka(x, p):
    X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
    return _stack(Y, (1.0 - Z) * X - p["a"] * Y, -p["b"] * Z + X**2)


def _shimizu_morioka_jac(x, p):
    X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
    return _jac(x, [[0.0, 1.0, 0.0], [1.0 - Z, -p["a"], -X], [2 * X, 0.0, -p["b"]]])


# ---------------------------------------------------------------- Hindmarsh-Rose
def _hr(x, p):
    X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
    return _stack(
        Y - p["a"] * X**3 + p["b"] * X**2 - Z + p["I"],
        p["c"] - p["d"] * X**2 - Y,
        p["r"] * (p["s"] * (X - p["xr"]) - Z),
    )


def _hr_jac(x, p):
    X = x[..., 0]
    r = p["r"]
    return _jac(x, [
        [-3 * p["a"] * X**2 + 2 * p["b"] * X, 1.0, -1.0],
        [-2 * p["d"] * X, -1.0, 0.0],
        [r * p["s"], 0.0, -r],
    ])


# ---------------------------------------------------------------- forced Duffing
def _duffing(x, p):
    X, V, P = x[..., 0], x[..., 1], x[..., 2]
    return _stack(
        V,
        -p["delta"] * V - p["alpha"] * X - p["beta"] * X**3 + p["gamma"] * np.cos(P),
        np.full_like(X, p["omega"]),
    )


def _duffing_jac(x, p):
    X, P = x[..., 0], x[..., 2]
    return _jac(x, [
        [0.0, 1.0, 0.0],
        [-p["alpha"] - 3 * p["beta"] * X**2, -p["delta"], -p["gamma"] * np.sin(P)],
        [0.0, 0.0, 0.0],
    ])


def _const(*v):
    v = np.asarray(v, dtype=float)
    return lambda p: v.copy()


_SYSTEMS = [
    System("lorenz63", 3, dict(sigma=10.0, rho=28.0, beta=8.0 / 3.0), _lorenz63,
           _lorenz63_jac, 0.01, _const(-8.0, 7.0, 27.0), 50.0,
           "x' = sigma (y - x); y' = x (rho - z) - y; z' = x y - beta z",
           lyapunov_ref=0.9056, lyapunov_time=200.0),
    System("rossler", 3, dict(a=0.2, b=0.2, c=5.7), _rossler, _rossler_jac, 0.05,
           _const(1.0, 1.0, 0.0), 200.0,
           "x' = -y - z; y' = x + a y; z' = b + z (x - c)",
           lyapunov_ref=0.0714, lyapunov_time=600.0),
    System("lorenz96", 10, dict(dim=10, F=8.0), _lorenz96, _lorenz96_jac, 0.02,
           _lorenz96_x0, 50.0,
           "x_i' = (x_{i+1} - x_{i-2}) x_{i-1} - x_i + F, i cyclic mod dim",
           lyapunov_time=100.0, dim_param="dim"),
    System("chua", 3, dict(alpha=15.6, beta=28.0, m0=-8.0 / 7.0, m1=-5.0 / 7.0),
           _chua, _chua_jac, 0.02, _const(0.7, 0.0, 0.0), 100.0,
           "x' = alpha (y - x - g(x)); y' = x - y + z; z' = -beta y; "
           "g(x) = m1 x + (m0 - m1)(|x + 1| - |x - 1|)/2",
           lyapunov_time=200.0, lyapunov_traj=2),
    System("thomas", 3, dict(b=0.1), _thomas, _thomas_jac, 0.1,
           _const(0.1, 0.0, 0.0), 500.0,
           "x' = sin y - b x; y' = sin z - b y; z' = sin x - b z",
           lyapunov_time=500.0),
    System("halvorsen", 3, dict(a=1.4), _halvorsen, _halvorsen_jac, 0.01,
           _const(-5.0, 0.0, 0.0), 50.0,
           "x' = -a x - 4y - 4z - y^2; y' = -a y - 4z - 4x - z^2; "
           "z' = -a z - 4x - 4y - x^2",
           lyapunov_time=100.0),
    System("aizawa", 3, dict(a=0.95, b=0.7, c=0.6, d=3.5, e=0.25, f=0.1), _aizawa,
           _aizawa_jac, 0.01, _const(0.1, 0.0, 0.0), 100.0,
           "x' = (z - b) x - d y; y' = d x + (z - b) y; "
           "z' = c + a z - z^3/3 - (x^2 + y^2)(1 + e z) + f z x^3",
           lyapunov_time=300.0),
    System("sprott_b", 3, dict(a=1.0, b=1.0), _sprott_b, _sprott_b_jac, 0.05,
           _const(0.05, 0.05, 0.05), 200.0,
           "x' = a y z; y' = x - y; z' = b - x y",
           lyapunov_ref=0.2101, lyapunov_time=300.0),
    System("sprott_c", 3, dict(a=1.0), _sprott_c, _sprott_c_jac, 0.05,
           _const(0.05, 0.05, 0.05), 200.0,
           "x' = a y z; y' = x - y; z' = 1 - x^2",
           lyapunov_ref=0.163, lyapunov_time=2000.0),
    System("lorenz84", 3, dict(a=0.25, b=4.0, F=8.0, G=1.0), _lorenz84,
           _lorenz84_jac, 0.05, _const(1.0, 0.0, 0.0), 200.0,
           "x' = -y^2 - z^2 - a x + a F; y' = x y - b x z - y + G; "
           "z' = b x y + x z - z",
           lyapunov_time=300.0),
    System("chen", 3, dict(a=35.0, b=3.0, c=28.0), _chen, _chen_jac, 0.002,
           _const(-10.0, 0.0, 37.0), 20.0,
           "x' = a (y - x); y' = (c - a) x - x z + c y; z' = x y - b z",
           lyapunov_time=50.0),
    System("lu", 3, dict(a=36.0, b=3.0, c=20.0), _lu, _lu_jac, 0.005,
           _const(-3.0, 2.0, 20.0), 20.0,
           "x' = a (y - x); y' = -x z + c y; z' = x y - b z",
           lyapunov_time=100.0),
    System("rucklidge", 3, dict(kappa=2.0, lam=6.7), _rucklidge, _rucklidge_jac, 0.05,
           _const(1.0, 0.0, 4.5), 200.0,
           "x' = -kappa x + lam y - y z; y' = x; z' = -z + y^2",
           lyapunov_time=500.0),
    System("shimizu_morioka", 3, dict(a=0.75, b=0.45), _shimizu_morioka,
           _shimizu_morioka_jac, 0.05, _const(0.1, 0.0, 0.0), 200.0,
           "x' = y; y' = (1 - z) x - a y; z' = -b z + x^2",
           lyapunov_time=2000.0),
    System("hindmarsh_rose", 3,
           dict(a=1.0, b=3.0, c=1.0, d=5.0, r=0.006, s=4.0, xr=-1.6, I=3.25),
           _hr, _hr_jac, 0.05, _const(-1.3, -7.3, 3.0), 300.0,
           "x' = y - a x^3 + b x^2 - z + I; y' = c - d x^2 - y; "
           "z' = r (s (x - xr) - z)   (slow z: time-scale ratio r)",
           lyapunov_time=1000.0),
    System("duffing", 3,
           dict(delta=0.3, alpha=-1.0, beta=1.0, gamma=0.5, omega=1.2),
           _duffing, _duffing_jac, 0.05, _const(0.5, 0.0, 0.0), 200.0,
           "x' = v; v' = -delta v - alpha x - beta x^3 + gamma cos(phi); "
           "phi' = omega   (observed: x, v; input: cos(phi))",
           lyapunov_time=500.0,
           observe=lambda s: s[..., :2],
           inputs=lambda s: np.cos(s[..., 2:3]),
           obs_dim=2),
]

for _s in _SYSTEMS:
    register_system(_s)
