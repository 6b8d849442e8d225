-- Rank figures with their unit (issue 13): the largest rank each module's form can reach, the error bound
-- of a sketched spectrum, and per-file totals and per-module spreads that say which is which.
ALTER TABLE lora_modules ADD COLUMN max_rank INTEGER;     -- LoRA min(r,out,in); LoHa min(r1·r2,out,in); LoKr rank(W1)·rank(W2); full min(out,in)
ALTER TABLE lora_modules ADD COLUMN sv_error DOUBLE;      -- sketched spectra: relative upper bound on σ1's error (NULL: exact)
ALTER TABLE lora_summary ADD COLUMN sum_max_rank BIGINT;  -- total of max_rank over the modules counted in sum_rank90/99
ALTER TABLE lora_summary ADD COLUMN rank_modules INTEGER; -- how many modules those totals cover
ALTER TABLE lora_summary ADD COLUMN per_module JSON;      -- {figure: {n, median, min, max}} of rank, max_rank, eff_rank_energy, rank90, rank99
ALTER TABLE lora_summary ADD COLUMN max_sv_error DOUBLE;  -- largest sv_error of the file's modules
