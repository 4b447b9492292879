"""Training objectives: caption x image similarities and the losses on them.

* ``similarity``: ``l2_normalize`` and the caption x image score matrix named by model.similarity
  (cosine, or a matchmap reduction on frame maps).
* ``matchmap``: matchmaps and their SISA/MISA/SIMA/fragment scores, chunked.
* ``losses``: hinge family (platalea, VSE++ hardest negative, DAVEnet sampled, ResDAVEnet-VQ
  semi-hard), InfoNCE, coscos², MSE regression.
* ``sigmoid``: SigLIP's sigmoid loss, plain and ring-chunked over devices.
* ``chunked``: ring-chunked versions of the hinge family and InfoNCE (``config.loss.chunked``):
  per-device scores n x n, n = B / devices; ``ring``: the ppermute ring they share.
* ``pairs``: the batch conventions the losses share (pair checks, padding/negative masks, counts).
* ``masked_prediction``: HuBERT's masked prediction of k-means targets, the self-supervised term
  added with ``config.loss.ssl_weight`` (span masks, target alignment, the loss).
* ``registry``: ``OBJECTIVES``, the losses a config can train with and the inputs each declares,
  and ``make_loss_fn``, which binds config.loss to one of them.
"""
