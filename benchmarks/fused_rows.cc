// One TensorFlow op that applies the official Adagrad-with-momentum row update in place: for each touched row,
// read the accumulator and velocity rows, compute, and write weights, accumulator and velocity back, in one pass.
// Built and timed by benchmarks/fused_rows.py (not part of the kit): it answers whether such a kernel would speed up
// the official configuration's step. Element-wise it computes exactly what the trainer's graph computes:
//   acc += g * g;  u = (lr * rsqrt(acc + eps)) * g;  v = momentum * v - u;  w = rows + v
// (TensorFlow's graph optimizer regroups the trainer's lr * (g * rsqrt(.)) as written here), with Eigen's packet
// rsqrt for every element but the last (n * d) % lanes, as TensorFlow's element-wise kernels split the work
// (the packet and scalar rsqrt round differently). Compile with TensorFlow's own vector width (-mavx) and no FMA
// contraction; fused_rows.py checks the result against the trainer's path bit for bit before timing anything.
#include <algorithm>
#include <cstring>
#include <vector>

#include "Eigen/Core"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace fused_rows {
using namespace tensorflow;
using Packet = Eigen::internal::packet_traits<float>::type;
constexpr int kLanes = Eigen::internal::unpacket_traits<Packet>::size;

REGISTER_OP("FusedAdagradRows")
    .Input("var: resource")
    .Input("acc: resource")
    .Input("mom: resource")
    .Input("indices: int32")
    .Input("grad: float")
    .Input("rows: float")
    .Input("lr: float")
    .Attr("momentum: float")
    .Attr("epsilon: float")
    .Attr("ahead: int = 4")
    .SetIsStateful()
    .SetShapeFn(shape_inference::NoOutputs);

// In-place writes are safe once reads of the variable copy (what TensorFlow's own scatter ops ensure first).
static Status SparseAccess(OpKernelContext* ctx, Var* var) {
  if (var->copy_on_read_mode.load()) return OkStatus();
  mutex_lock ml(*var->mu());
  if (var->copy_on_read_mode.load()) return OkStatus();
  if (!var->tensor()->RefCountIsOne()) {
    Tensor copy;
    TF_RETURN_IF_ERROR(ctx->allocate_temp(var->tensor()->dtype(), var->tensor()->shape(), &copy));
    std::memcpy(copy.flat<float>().data(), var->tensor()->flat<float>().data(),
                sizeof(float) * var->tensor()->NumElements());
    *var->tensor() = copy;
  }
  var->copy_on_read_mode.store(true);
  return OkStatus();
}

class FusedAdagradRowsOp : public OpKernel {
 public:
  explicit FusedAdagradRowsOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("momentum", &momentum_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon", &epsilon_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("ahead", &ahead_));
  }

  void Compute(OpKernelContext* ctx) override {
    core::RefCountPtr<Var> vars[3];
    for (int k = 0; k < 3; ++k) {
      OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, k), &vars[k]));
      OP_REQUIRES(ctx, vars[k]->tensor()->dtype() == DT_FLOAT, errors::InvalidArgument("float32 variables only"));
      OP_REQUIRES_OK(ctx, SparseAccess(ctx, vars[k].get()));
    }
    const Tensor& indices = ctx->input(3);
    const Tensor& grad = ctx->input(4);
    const Tensor& rows = ctx->input(5);
    const float lr = ctx->input(6).scalar<float>()();
    const TensorShape shape = vars[0]->tensor()->shape();
    OP_REQUIRES(ctx, shape.dims() >= 1 && shape.dim_size(0) > 0, errors::InvalidArgument("empty variable"));
    const int64_t n_rows = shape.dim_size(0), d = shape.num_elements() / n_rows, n = indices.NumElements();
    OP_REQUIRES(ctx, grad.NumElements() == n * d && rows.NumElements() == n * d,
                errors::InvalidArgument("grad and rows must be (len(indices), row size)"));
    std::vector<mutex*> mus;
    for (auto& var : vars) {
      OP_REQUIRES(ctx, var->tensor()->shape() == shape, errors::InvalidArgument("variable shapes differ"));
      mus.push_back(var->mu());
    }
    std::sort(mus.begin(), mus.end());
    struct SharedLocks {  // rows are distinct, so blocks of one update may run side by side
      std::vector<mutex*> held;
      ~SharedLocks() {
        for (auto it = held.rbegin(); it != held.rend(); ++it) (*it)->unlock_shared();
      }
    } locks;
    for (mutex* mu : mus) {
      mu->lock_shared();
      locks.held.push_back(mu);
    }
    const int32* idx = indices.flat<int32>().data();
    for (int64_t r = 0; r < n; ++r) {
      OP_REQUIRES(ctx, idx[r] >= 0 && idx[r] < n_rows, errors::InvalidArgument("row index out of range"));
    }
    const float* g = grad.flat<float>().data();
    const float* x = rows.flat<float>().data();
    float* w = vars[0]->tensor()->flat<float>().data();
    float* acc = vars[1]->tensor()->flat<float>().data();
    float* mom = vars[2]->tensor()->flat<float>().data();
    const int64_t packet_end = (n * d) / kLanes * kLanes;
    using namespace Eigen::internal;
    const Packet p_eps = pset1<Packet>(epsilon_), p_mom = pset1<Packet>(momentum_), p_lr = pset1<Packet>(lr);
    alignas(64) float pad_g[kLanes], pad_a[kLanes], pad_inv[kLanes];
    for (int64_t r = 0; r < n; ++r) {
      if (ahead_ > 0 && r + ahead_ < n) {
        const int64_t next = static_cast<int64_t>(idx[r + ahead_]) * d;
        for (int64_t off = 0; off < d; off += 16) {
          __builtin_prefetch(acc + next + off, 1);
          __builtin_prefetch(mom + next + off, 1);
          __builtin_prefetch(w + next + off, 1);
        }
      }
      const int64_t base = static_cast<int64_t>(idx[r]) * d, flat = r * d;
      float *a_row = acc + base, *m_row = mom + base, *w_row = w + base;
      const float *g_row = g + flat, *x_row = x + flat;
      int64_t j = 0;
      for (; j + kLanes <= d && flat + j + kLanes <= packet_end; j += kLanes) {
        const Packet gp = ploadu<Packet>(g_row + j);
        const Packet ap = padd(ploadu<Packet>(a_row + j), pmul(gp, gp));
        const Packet up = pmul(pmul(p_lr, prsqrt(padd(ap, p_eps))), gp);
        const Packet vp = psub(pmul(p_mom, ploadu<Packet>(m_row + j)), up);
        pstoreu(a_row + j, ap);
        pstoreu(m_row + j, vp);
        pstoreu(w_row + j, padd(ploadu<Packet>(x_row + j), vp));
      }
      if (j == d) continue;
      // the row's last few elements: rsqrt through a padded packet, or the scalar rsqrt past packet_end
      for (int k = 0; k < kLanes; ++k) {
        pad_g[k] = j + k < d ? g_row[j + k] : 0.f;
        pad_a[k] = j + k < d ? a_row[j + k] : 1.f;
      }
      const Packet gp = pload<Packet>(pad_g);
      pstore(pad_inv, prsqrt(padd(padd(pload<Packet>(pad_a), pmul(gp, gp)), p_eps)));
      for (int64_t k = 0; j + k < d; ++k) {
        const float gk = g_row[j + k], ak = a_row[j + k] + gk * gk;
        const float inv = flat + j + k < packet_end ? pad_inv[k] : Eigen::numext::rsqrt(ak + epsilon_);
        const float vk = momentum_ * m_row[j + k] - (lr * inv) * gk;
        a_row[j + k] = ak;
        m_row[j + k] = vk;
        w_row[j + k] = x_row[j + k] + vk;
      }
    }
  }

 private:
  float momentum_, epsilon_;
  int ahead_;
};
REGISTER_KERNEL_BUILDER(Name("FusedAdagradRows").Device(DEVICE_CPU), FusedAdagradRowsOp);

}  // namespace fused_rows
