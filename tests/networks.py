"""Graphs that several picture and explain() tests draw."""
from microbp import Value


def lecture_loss():
    """The lecture's 2-2-1 sigmoid network (26 values), after backward."""
    w = {k: Value(v, label=k) for k, v in
         (("w_AC", 0.1), ("w_BC", 0.4), ("w_AD", 0.5), ("w_BD", 0.3), ("w_CE", 0.2),
          ("w_DE", 0.6))}
    x_a, x_b = Value(0.23, label="x_A"), Value(0.82, label="x_B")
    y_c = (w["w_AC"] * x_a + w["w_BC"] * x_b).sigmoid()
    y_d = (w["w_AD"] * x_a + w["w_BD"] * x_b).sigmoid()
    yhat = (w["w_CE"] * y_c + w["w_DE"] * y_d).sigmoid()
    loss = 0.5 * (Value(1.0, label="y") - yhat) ** 2
    loss.label = "L"
    loss.backward()
    return loss
