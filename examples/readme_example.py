import keras
import numpy as np
import mmt

x = np.random.default_rng(0).uniform(0, 1, (256, 28, 28, 1)).astype("float32")
y = np.random.default_rng(1).integers(0, 10, 256)          # sparse integer labels
centers = mmt.get_centers("mm", num_classes=10, feature_dim=16, c_mm=10.0)
inputs = keras.Input((28, 28, 1))
z = keras.layers.Dense(16)(keras.layers.Flatten()(inputs))
model = keras.Model(inputs, mmt.MMCLayer(centers)(z))      # logits -||z - mu_l||^2
model.compile("adam", loss=mmt.MMCLoss())
model.fit(x, y, epochs=1, batch_size=64, verbose=0)
result = mmt.evaluate(model, x[:32], y[:32], attacks=["MadryEtAl"], eps=8 / 255,
                      objective="mmc_un1", nb_iter=10)
print(f"clean {result.clean_accuracy:.3f}, robust {result.robust_accuracy:.3f}")
